/* textenc.h -- the input's character encoding: byte-order marks, encoding names, and a decoder
 * to UTF-8 (iconv) that stops anywhere and goes on where it stopped. */
#ifndef CSVSTREAM_TEXTENC_H
#define CSVSTREAM_TEXTENC_H

#include <stddef.h>

enum textenc_bom {
  TEXTENC_BOM_NONE = 0,
  TEXTENC_BOM_UTF8,    /* EF BB BF */
  TEXTENC_BOM_UTF16LE, /* FF FE */
  TEXTENC_BOM_UTF16BE  /* FE FF */
};

/* The byte-order mark s starts with (TEXTENC_BOM_NONE if none, or s is too short to tell),
 * its length in *bom_len (0 for none). */
int textenc_bom(const char *s, size_t len, size_t *bom_len);

/* The encoding name of a BOM kind: "UTF-8", "UTF-16LE", "UTF-16BE" ("" for none). */
const char *textenc_bom_name(int bom);

/* 1 when name means UTF-8 ("utf-8", "UTF8", any case), else 0. */
int textenc_is_utf8(const char *name);

typedef struct textenc textenc; /* opaque */

/* A decoder from encoding `from` (any name iconv knows) to UTF-8. Returns 0, or CS_EINVAL with
 * "--encoding: 'x' is not an encoding this system knows (iconv: ...)" in err, or CS_ENOMEM. */
int textenc_open(textenc **out, const char *from, char *err, size_t errlen);

/* Decode from *in (*inlen bytes) into *out (*outlen bytes of room), moving all four on. Stops
 * when the input is used up, the output is full, or at a byte sequence that is not valid in the
 * encoding. Returns 0 (input used up or output full: call again with more of either), 1 when
 * the input ends inside a character (its first bytes are left in *in: give them again with what
 * follows), or CS_EINVAL at an invalid sequence (*in points at it). */
int textenc_convert(textenc *t, const char **in, size_t *inlen, char **out, size_t *outlen);

/* Forget any state (for reading the input again from its start). */
void textenc_reset(textenc *t);

/* The name given to textenc_open. */
const char *textenc_name(const textenc *t);

void textenc_close(textenc *t); /* accepts NULL */

#endif
