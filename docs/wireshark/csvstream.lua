-- csvstream.lua -- a Wireshark dissector for the csvstream wire protocol, versions 1 to 3
-- (docs/protocol.md is the specification; common/wire.c its implementation).
--
-- Load it for one run:   tshark -X lua_script:docs/wireshark/csvstream.lua -r capture.pcap
-- or for good:           cp docs/wireshark/csvstream.lua ~/.local/lib/wireshark/plugins/
--
-- It dissects TCP (frames reassembled across segments, several frames per segment) and UDP
-- (several frames per datagram), on the ports of its preferences (default 9999, the consumer's
-- default; "Decode As..." picks others) and, by a heuristic on the magic "CS" and a version of
-- 1 to 3, on any port. Display filter: csvstream; fields: csvstream.*.

local csvstream = Proto("csvstream", "csvstream CSV record stream")

-- Limits and layout, as in common/wire.h.
local HEADER_LEN = 8 -- magic(2) version(1) type(1) payload length(4, big-endian)
local FIXED_PAYLOAD = 8 * 4 + 1 + 4 -- producer_id, seq, sent_us, line, stream_len, nfields
local MAX_PAYLOAD = 1048576 -- 1 MiB
local KEY_LEN = 16 -- version 3: the session key in HELLO and END
local VERSION_MIN, VERSION_MAX = 1, 3

local HELLO, RECORD, END, ACK, REFUSE = 1, 2, 3, 4, 5
local type_names = { [HELLO] = "HELLO", [RECORD] = "RECORD", [END] = "END", [ACK] = "ACK",
                     [REFUSE] = "REFUSE" }
-- What the fields of each type are: HELLO carries column names, RECORD values, REFUSE the
-- reason; END and ACK carry none (a field there is shown as a plain field).
local field_kinds = { [HELLO] = "column", [RECORD] = "value", [REFUSE] = "reason" }

local PT_UDP = 3 -- pinfo.port_type of a UDP packet (Wireshark's port_type enum)

local f = csvstream.fields
f.magic = ProtoField.string("csvstream.magic", "Magic", base.ASCII)
f.version = ProtoField.uint8("csvstream.version", "Version", base.DEC)
f.type = ProtoField.uint8("csvstream.type", "Type", base.DEC, type_names)
f.length = ProtoField.uint32("csvstream.length", "Payload length", base.DEC)
f.direction = ProtoField.string("csvstream.direction", "Direction")
f.producer_id = ProtoField.uint64("csvstream.producer_id", "Producer ID", base.HEX)
f.seq = ProtoField.uint64("csvstream.seq", "Sequence number", base.DEC)
f.sent_us = ProtoField.absolute_time("csvstream.sent_us", "Sent", base.UTC)
f.line = ProtoField.uint64("csvstream.line", "Source line", base.DEC)
f.stream_len = ProtoField.uint8("csvstream.stream_len", "Stream name length", base.DEC)
f.stream = ProtoField.string("csvstream.stream", "Stream", base.UNICODE)
f.session_key = ProtoField.bytes("csvstream.session_key", "Session key")
f.nfields = ProtoField.uint32("csvstream.nfields", "Field count", base.DEC)
f.bad_bytes = ProtoField.bytes("csvstream.bad_bytes", "Bytes at fault")

-- One group per field kind: the field as a whole (its length prefix and bytes), its index,
-- its length and its bytes as text.
local kind_fields = {}
for _, kind in ipairs({ "column", "value", "reason", "field" }) do
  local title = kind:sub(1, 1):upper() .. kind:sub(2)
  local k = {
    item = ProtoField.none("csvstream." .. kind .. ".item", title),
    index = ProtoField.uint32("csvstream." .. kind .. ".index", title .. " index", base.DEC),
    len = ProtoField.uint32("csvstream." .. kind .. ".len", title .. " length", base.DEC),
    data = ProtoField.string("csvstream." .. kind, title, base.UNICODE),
    title = title,
  }
  f[kind .. "_item"] = k.item
  f[kind .. "_index"] = k.index
  f[kind .. "_len"] = k.len
  f[kind] = k.data
  kind_fields[kind] = k
end

local e = csvstream.experts
e.bad_magic = ProtoExpert.new("csvstream.bad_magic", "Bad magic (not \"CS\")",
                              expert.group.MALFORMED, expert.severity.ERROR)
e.bad_version = ProtoExpert.new("csvstream.bad_version", "Unknown protocol version",
                                expert.group.MALFORMED, expert.severity.ERROR)
e.bad_type = ProtoExpert.new("csvstream.bad_type", "Unknown frame type for this version",
                             expert.group.MALFORMED, expert.severity.ERROR)
e.too_big = ProtoExpert.new("csvstream.too_big", "Payload length over 1 MiB",
                            expert.group.MALFORMED, expert.severity.ERROR)
e.past_end = ProtoExpert.new("csvstream.past_end", "Payload runs past the end",
                             expert.group.MALFORMED, expert.severity.ERROR)
e.truncated = ProtoExpert.new("csvstream.truncated", "Datagram ends inside a frame",
                              expert.group.MALFORMED, expert.severity.ERROR)
e.trailing = ProtoExpert.new("csvstream.trailing", "Trailing bytes after the last field",
                             expert.group.MALFORMED, expert.severity.ERROR)
e.bad_stream = ProtoExpert.new("csvstream.bad_stream", "Empty stream name",
                               expert.group.MALFORMED, expert.severity.ERROR)
e.no_fields = ProtoExpert.new("csvstream.no_fields", "RECORD or REFUSE without a field",
                              expert.group.MALFORMED, expert.severity.ERROR)
e.partial = ProtoExpert.new("csvstream.partial_frame",
                            "Part of a frame cut across segments (TCP reassembly is off)",
                            expert.group.REASSEMBLE, expert.severity.NOTE)

csvstream.prefs.tcp_port = Pref.uint("TCP port", 9999, "TCP port of the consumer (0: none)")
csvstream.prefs.udp_port = Pref.uint("UDP port", 9999, "UDP port of the consumer (0: none)")
csvstream.prefs.heuristic = Pref.bool("Heuristic on any port", true,
                                      "Recognise csvstream on any TCP or UDP port by its magic "
                                        .. "\"CS\" and version 1 to 3")

-- Seconds and nanoseconds of a count of microseconds since the Unix epoch, as an NSTime.
local function us_to_nstime(us)
  local million = UInt64(1000000)
  return NSTime((us / million):tonumber(), (us % million):tonumber() * 1000)
end

-- A short quoted excerpt of a field's bytes for labels and the Info column.
local function excerpt(range)
  if range:len() == 0 then
    return "\"\""
  end
  local text = range:len() > 40 and range(0, 40):string(ENC_UTF_8) .. "…"
    or range:string(ENC_UTF_8)
  text = text:gsub("[%c\"\\]", function(c)
    local named = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\""] = "\\\"",
                    ["\\"] = "\\\\" }
    return named[c] or string.format("\\x%02x", c:byte())
  end)
  return "\"" .. text .. "\""
end

-- Add the summaries of the frames one dissector call found (`list`) to the Info column: the
-- first three frames of a packet in full, then their count. A packet can take more than one
-- call (a reassembled frame, then the rest of the segment): pinfo.private, which lives for one
-- dissection of one packet, keeps what the calls before found. TCP fences the column after a
-- reassembled frame; the whole text is ours, so the fence is cleared. Once per call, not per
-- frame: a segment may hold hundreds.
local function info_add(pinfo, list)
  if #list == 0 then
    return
  end
  local n = tonumber(pinfo.private.csvstream_frames or "0")
  local text = pinfo.private.csvstream_info
  for _, summary in ipairs(list) do
    n = n + 1
    if n == 1 then
      text = summary
    elseif n <= 3 then
      text = text .. ", " .. summary
    else
      break
    end
  end
  n = tonumber(pinfo.private.csvstream_frames or "0") + #list
  pinfo.private.csvstream_frames = tostring(n)
  pinfo.private.csvstream_info = text
  pinfo.cols.protocol:set("csvstream")
  pinfo.cols.info:clear_fence()
  pinfo.cols.info:set(n <= 3 and text or text .. ", … (" .. n .. " frames)")
end

-- The header problem, if any, of the `n` bytes of a frame header (n may be under 8): the
-- expert, its text and the byte it is about. nil when the bytes seen so far are good.
local function header_problem(tvb, n)
  if n > 0 and tvb(0, 1):uint() ~= 0x43 or n > 1 and tvb(1, 1):uint() ~= 0x53 then
    return e.bad_magic, "bad magic (not a csvstream frame)", 0, 2 < n and 2 or n
  end
  if n > 2 then
    local version = tvb(2, 1):uint()
    if version < VERSION_MIN or version > VERSION_MAX then
      return e.bad_version, "unknown version " .. version .. " (csvstream knows 1 to 3)", 2, 1
    end
    if n > 3 then
      local t = tvb(3, 1):uint()
      if not type_names[t] or t >= ACK and version < 2 then
        return e.bad_type, "unknown type " .. t .. " for version " .. version, 3, 1
      end
    end
  end
  if n >= HEADER_LEN and tvb(4, 4):uint() > MAX_PAYLOAD then
    return e.too_big, "payload length " .. tvb(4, 4):uint() .. " over the limit of 1 MiB", 4, 4
  end
  return nil
end

-- Add the fields of one frame's payload to `ft`. Returns the summary for the Info column.
-- `tvb` holds exactly the frame (header included); the header was checked.
local function dissect_payload(tvb, ft, version, t)
  local frame_len = tvb:len()
  local off = HEADER_LEN
  local name = type_names[t]

  -- Adds expert `ex` at the bytes from `at` to the end and returns the summary.
  local function malformed(ex, text, at)
    local rest = at < frame_len and tvb(at, frame_len - at) or tvb(frame_len - 1, 1)
    ft:add(f.bad_bytes, rest):add_proto_expert_info(ex, text)
    return name .. " [malformed: " .. text .. "]"
  end

  if frame_len - off < FIXED_PAYLOAD then
    return malformed(e.past_end, "payload of " .. (frame_len - off) .. " bytes is shorter than "
                       .. "the " .. FIXED_PAYLOAD .. " every frame needs", off)
  end
  if t == ACK or t == REFUSE then
    ft:add(f.direction, "consumer → producer"):set_generated()
  else
    ft:add(f.direction, "producer → consumer"):set_generated()
  end
  local pid = tvb(off, 8)
  ft:add(f.producer_id, pid)
  local seq = tvb(off + 8, 8):uint64()
  ft:add(f.seq, tvb(off + 8, 8))
  ft:add(f.sent_us, tvb(off + 16, 8), us_to_nstime(tvb(off + 16, 8):uint64()))
  ft:add(f.line, tvb(off + 24, 8))
  local stream_len = tvb(off + 32, 1):uint()
  ft:add(f.stream_len, tvb(off + 32, 1))
  off = off + 33
  if stream_len == 0 then
    return malformed(e.bad_stream, "stream name length 0", off - 1)
  end
  if frame_len - off < stream_len + 4 then
    return malformed(e.past_end, "stream name of " .. stream_len .. " bytes runs past the end",
                     off)
  end
  local stream_range = tvb(off, stream_len)
  ft:add_packet_field(f.stream, stream_range, ENC_UTF_8)
  -- A plain name stands as it is in the Info column (stream=temperatures); one with spaces,
  -- commas, quotes or control characters is quoted and escaped.
  local stream_text = stream_range:string(ENC_UTF_8)
  if stream_len > 40 or not stream_text:match("^[%w%._/:+-]+$") then
    stream_text = excerpt(stream_range)
  end
  off = off + stream_len
  if version >= 3 and (t == HELLO or t == END) then
    if frame_len - off < KEY_LEN + 4 then
      return malformed(e.past_end, "session key runs past the end", off)
    end
    ft:add(f.session_key, tvb(off, KEY_LEN))
    off = off + KEY_LEN
  end
  local nfields = tvb(off, 4):uint()
  ft:add(f.nfields, tvb(off, 4))
  off = off + 4
  -- Each field needs its 4-byte length at least (as the decoder checks before anything else).
  if nfields > (frame_len - off) / 4 then
    return malformed(e.past_end, nfields .. " fields cannot fit in the " .. (frame_len - off)
                       .. " bytes left", off)
  end
  local k = kind_fields[field_kinds[t] or "field"]
  local visible = ft.visible
  local first
  for i = 1, nfields do
    if frame_len - off < 4 then
      return malformed(e.past_end, k.title:lower() .. " " .. i .. " has no length", off)
    end
    local flen = tvb(off, 4):uint()
    if flen > frame_len - off - 4 then
      return malformed(e.past_end, k.title:lower() .. " " .. i .. " of " .. flen
                         .. " bytes runs past the end", off)
    end
    local whole = tvb(off, 4 + flen)
    local data = tvb(off + 4, flen)
    local item = ft:add(k.item, whole)
    -- The label (an escaped excerpt) only where the tree is shown: it is a third of the time.
    if visible then
      item:set_text(k.title .. " " .. i .. " (" .. flen .. (flen == 1 and " byte" or " bytes")
                      .. "): " .. excerpt(data))
    end
    item:add(k.index, i):set_generated()
    item:add(k.len, tvb(off, 4))
    item:add_packet_field(k.data, data, ENC_UTF_8)
    if i == 1 then
      first = excerpt(data)
    end
    off = off + 4 + flen
  end
  if off ~= frame_len then
    return malformed(e.trailing, (frame_len - off) .. " bytes after the last field", off)
  end
  if (t == RECORD or t == REFUSE) and nfields == 0 then
    return malformed(e.no_fields, name .. " without a field", off - 4)
  end

  local s = "stream=" .. stream_text
  if t == HELLO then
    return string.format("HELLO %s %d %s", s, nfields, nfields == 1 and "column" or "columns")
  elseif t == RECORD then
    return string.format("RECORD %s #%s (%d %s)", s, tostring(seq), nfields,
                         nfields == 1 and "field" or "fields")
  elseif t == END then
    return string.format("END %s last=#%s", s, tostring(seq))
  elseif t == ACK then
    return string.format("ACK %s up to #%s", s, tostring(seq))
  end
  return string.format("REFUSE %s: %s", s, first or "")
end

-- Dissect one whole frame (`tvb` is exactly it) and add it to the tree as its own subtree.
-- Returns its summary for the Info column.
local function dissect_frame(tvb, tree)
  local version = tvb(2, 1):uint()
  local t = tvb(3, 1):uint()
  local ft = tree:add(csvstream, tvb())
  ft:add(f.magic, tvb(0, 2))
  ft:add(f.version, tvb(2, 1))
  ft:add(f.type, tvb(3, 1))
  ft:add(f.length, tvb(4, 4))
  local summary = dissect_payload(tvb, ft, version, t)
  ft:append_text(", " .. summary)
  return summary
end

-- Show the bytes from `off` as a bad frame (the rest of a segment or datagram cannot be read):
-- the header fields that are there, then the bytes at fault (`at`, `len` from `off`) with the
-- expert info. Returns the summary for the Info column.
local function dissect_garbage(tvb, tree, off, ex, text, at, len)
  local rest = tvb(off)
  local ft = tree:add(csvstream, rest)
  ft:append_text(", malformed: " .. text)
  local have = rest:len()
  if have >= 2 then
    ft:add(f.magic, rest(0, 2))
  end
  if have >= 3 then
    ft:add(f.version, rest(2, 1))
  end
  if have >= 4 then
    ft:add(f.type, rest(3, 1))
  end
  if have >= HEADER_LEN then
    ft:add(f.length, rest(4, 4))
  end
  if at >= have then
    at, len = have - 1, 1
  end
  ft:add(f.bad_bytes, rest(at, len > 0 and len or 1)):add_proto_expert_info(ex, text)
  return "[malformed: " .. text .. "]"
end

-- A part of a frame that cannot be read while TCP's reassembly is off. Returns its summary.
local function dissect_partial(tvb, tree, off)
  local ft = tree:add(csvstream, tvb(off))
  ft:append_text(", part of a frame (TCP reassembly is off)")
  ft:add_proto_expert_info(e.partial)
  return "[part of a frame]"
end

-- Every whole frame of a TCP segment or a UDP datagram in turn, each summary added to
-- `summaries`. Over TCP a frame cut off at the end asks for more bytes (desegment_offset,
-- desegment_len); over UDP, where a datagram holds whole frames only, it is malformed.
-- Returns the bytes used, as a dissector does.
local function dissect_frames(tvb, pinfo, tree, summaries)
  local len = tvb:len()
  local udp = pinfo.port_type == PT_UDP
  local off = 0
  while off < len do
    local left = len - off
    local head = tvb(off, left < HEADER_LEN and left or HEADER_LEN)
    local ex, text, at, n = header_problem(head:tvb(), head:len())
    if ex and not udp and off == 0 and pinfo.can_desegment == 0 then
      -- Without reassembly a segment may begin inside a frame: that is no proof of bad bytes.
      summaries[#summaries + 1] = dissect_partial(tvb, tree, off)
      return len
    end
    if ex then
      -- Over TCP the byte stream cannot be resynchronised after this; over UDP the rest of the
      -- datagram is ignored, as the consumer does.
      summaries[#summaries + 1] = dissect_garbage(tvb, tree, off, ex, text, at, n)
      return len
    end
    local frame_len = left >= HEADER_LEN and HEADER_LEN + tvb(off + 4, 4):uint() or nil
    if frame_len == nil or frame_len > left then
      if udp then
        local short = frame_len and frame_len - left
        local why = short and "datagram ends " .. short .. (short == 1 and " byte" or " bytes")
          .. " before the end of a " .. frame_len .. "-byte frame"
          or "datagram ends inside a frame header"
        summaries[#summaries + 1] = dissect_garbage(tvb, tree, off, e.truncated, why, 0, left)
        return len
      end
      if pinfo.can_desegment > 0 then
        pinfo.desegment_offset = off
        pinfo.desegment_len = frame_len and frame_len - left or DESEGMENT_ONE_MORE_SEGMENT
        return len
      end
      summaries[#summaries + 1] = dissect_partial(tvb, tree, off)
      return len
    end
    summaries[#summaries + 1] = dissect_frame(tvb(off, frame_len):tvb(), tree)
    off = off + frame_len
  end
  return off
end

-- The dissector for a TCP segment or a UDP datagram.
local function dissect(tvb, pinfo, tree)
  local summaries = {}
  local used = dissect_frames(tvb, pinfo, tree, summaries)
  info_add(pinfo, summaries)
  return used
end

function csvstream.dissector(tvb, pinfo, tree)
  return dissect(tvb, pinfo, tree)
end

-- The heuristic: "CS", a version of 1 to 3, a type of that version and, when the bytes are
-- there, a payload length that can hold a frame. A match makes the whole conversation ours, so
-- the segments that follow (and the rest of a frame cut across them) come here too.
local function heuristic(tvb, pinfo, tree)
  if not csvstream.prefs.heuristic or tvb:len() < 3 then
    return false
  end
  if header_problem(tvb, tvb:len() < HEADER_LEN and tvb:len() or HEADER_LEN) then
    return false
  end
  if tvb:len() >= HEADER_LEN and tvb(4, 4):uint() < FIXED_PAYLOAD + 1 then
    return false
  end
  pinfo.conversation = csvstream
  dissect(tvb, pinfo, tree)
  return true
end

csvstream:register_heuristic("tcp", heuristic)
csvstream:register_heuristic("udp", heuristic)

-- The ports of the preferences; changing them moves the registration. Both tables also offer
-- csvstream in "Decode As...".
local registered = { tcp = 0, udp = 0 }
local function register_ports()
  for proto, port in pairs({ tcp = csvstream.prefs.tcp_port, udp = csvstream.prefs.udp_port }) do
    local table_ = DissectorTable.get(proto .. ".port")
    if registered[proto] ~= 0 then
      table_:remove(registered[proto], csvstream)
    end
    if port ~= 0 then
      table_:add(port, csvstream)
    end
    registered[proto] = port
  end
end

function csvstream.prefs_changed()
  register_ports()
end

register_ports()
