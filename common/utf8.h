/* utf8.h -- UTF-8 checking (whole runs or a stream split anywhere) and repair (invalid bytes
 * read as Windows-1252), for the CSV reader's warnings and the database sinks' column names. */
#ifndef CSVSTREAM_UTF8_H
#define CSVSTREAM_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Where a scan of a stream stands between two pieces: inside a multi-byte character, the
 * bytes it still needs and the range the next one must lie in. Zero it to start. */
typedef struct utf8_scan {
  unsigned need;    /* continuation bytes still due (0: between characters) */
  unsigned char lo; /* the next byte's range (narrower after E0, ED, F0, F4) */
  unsigned char hi;
} utf8_scan;

/* Offset in s of the first byte that cannot continue valid UTF-8 from *st (strict: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or len when all of s is valid so far;
 * then *st says whether s ended inside a character. After an invalid byte *st is reset, so a
 * caller can go on scanning from the next byte. */
size_t utf8_scan_feed(utf8_scan *st, const char *s, size_t len);

/* 1 when s is valid UTF-8 as a whole (a character cut at its end is not), else 0. */
int utf8_valid(const char *s, size_t len);

/* Offset of the first byte of s where no valid character starts (a character cut at the end
 * of s counts), or len when s is valid UTF-8 as a whole. */
size_t utf8_invalid_at(const char *s, size_t len);

/* Append s to out with every byte that is not part of valid UTF-8 replaced by the character
 * Windows-1252 gives it (0xE9 -> U+00E9, 0x80 -> U+20AC; the five bytes that encoding leaves
 * undefined -> U+FFFD), so text in Latin-1 or Windows-1252 comes out readable. *replaced (may
 * be NULL) gets the number of bytes replaced. Returns 0 or CS_ENOMEM. */
int utf8_repair(const char *s, size_t len, cs_buf *out, size_t *replaced);

#endif
