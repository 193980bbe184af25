/* error.c -- the one table that turns any error code of the project into a message. */
#include "error.h"

#include <string.h>

/* Project codes map to fixed messages; anything in (-4095, 0) is a negated errno. */
const char *cs_strerror(int code) {
  switch (code) {
  case 0:
    return "success";
  case CS_ENOMEM:
    return "out of memory";
  case CS_EBADMAGIC:
    return "not a csvstream frame (bad magic bytes)";
  case CS_EVERSION:
    return "unsupported csvstream protocol version";
  case CS_ETYPE:
    return "unknown message type";
  case CS_ETOOBIG:
    return "frame or record too large";
  case CS_EMALFORMED:
    return "malformed message payload";
  case CS_ETRUNCATED:
    return "datagram ends inside a frame";
  case CS_ECSV:
    return "CSV parse error";
  case CS_EIO:
    return "input/output error";
  case CS_EINVAL:
    return "invalid argument";
  case CS_ESQLITE:
    return "SQLite error";
  case CS_EBUSY:
    return "database is locked";
  case CS_ENOFILE:
    return "no file for this stream";
  case CS_EPROTO:
    return "protocol violation";
  case CS_ESTOP:
    return "stopped as asked";
  case CS_ERANGE:
    return "out of range";
  case CS_EREFUSED:
    return "refused";
  case CS_ESPOOFED:
    return "spoofed (a stream another sender began)";
  default:
    break;
  }
  if (code < 0 && code > -4096) {
    return strerror(-code);
  }
  return "unknown error";
}
