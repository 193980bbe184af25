/* textenc.c -- byte-order marks, encoding names, and iconv to UTF-8 behind a small interface. */
#include "textenc.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"

struct textenc {
  iconv_t cd;
  char *name;
};

int textenc_bom(const char *s, size_t len, size_t *bom_len) {
  const unsigned char *u = (const unsigned char *)s;
  *bom_len = 0;
  if (len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) {
    *bom_len = 3;
    return TEXTENC_BOM_UTF8;
  }
  if (len >= 2 && u[0] == 0xFF && u[1] == 0xFE) {
    *bom_len = 2;
    return TEXTENC_BOM_UTF16LE;
  }
  if (len >= 2 && u[0] == 0xFE && u[1] == 0xFF) {
    *bom_len = 2;
    return TEXTENC_BOM_UTF16BE;
  }
  return TEXTENC_BOM_NONE;
}

const char *textenc_bom_name(int bom) {
  switch (bom) {
  case TEXTENC_BOM_UTF8:
    return "UTF-8";
  case TEXTENC_BOM_UTF16LE:
    return "UTF-16LE";
  case TEXTENC_BOM_UTF16BE:
    return "UTF-16BE";
  default:
    return "";
  }
}

int textenc_is_utf8(const char *name) {
  return strcasecmp(name, "utf-8") == 0 || strcasecmp(name, "utf8") == 0;
}

int textenc_open(textenc **out, const char *from, char *err, size_t errlen) {
  textenc *t = calloc(1, sizeof *t);
  *out = NULL;
  if (t == NULL || (t->name = strdup(from)) == NULL) {
    free(t);
    snprintf(err, errlen, "out of memory");
    return CS_ENOMEM;
  }
  t->cd = iconv_open("UTF-8", from);
  if (t->cd == (iconv_t)-1) {
    snprintf(err, errlen,
             "--encoding: '%s' is not an encoding this system knows (iconv: %s; `iconv -l` lists "
             "the names)",
             from, strerror(errno));
    free(t->name);
    free(t);
    return CS_EINVAL;
  }
  *out = t;
  return 0;
}

int textenc_convert(textenc *t, const char **in, size_t *inlen, char **out, size_t *outlen) {
  while (*inlen > 0) {
    /* iconv's input is char ** without const; it only reads through it. */
    char *src = (char *)(size_t)*in;
    size_t n = iconv(t->cd, &src, inlen, out, outlen);
    *in = src;
    if (n != (size_t)-1) {
      return 0;
    }
    if (errno == E2BIG) {
      return 0;
    }
    if (errno == EINVAL) {
      return 1;
    }
    if (errno == EILSEQ) {
      return CS_EINVAL;
    }
    if (errno != EINTR) {
      return CS_EINVAL;
    }
  }
  return 0;
}

void textenc_reset(textenc *t) {
  (void)iconv(t->cd, NULL, NULL, NULL, NULL);
}

const char *textenc_name(const textenc *t) {
  return t->name;
}

void textenc_close(textenc *t) {
  if (t == NULL) {
    return;
  }
  iconv_close(t->cd);
  free(t->name);
  free(t);
}
