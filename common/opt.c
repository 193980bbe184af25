/* opt.c -- option value parsing with end-pointer and range checks, and the --version text. */
#include "opt.h"

#include <csv.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "error.h"

#ifndef CSVSTREAM_VERSION
#define CSVSTREAM_VERSION "unknown"
#endif

/* Parse a base-10 integer that must fill the whole string and lie in [min, max]. */
int opt_long(const char *flag, const char *s, long long min, long long max, long long *out,
             char *err, size_t errlen) {
  if (s == NULL || s[0] == '\0') {
    snprintf(err, errlen, "%s: a value is required (%lld-%lld)", flag, min, max);
    return CS_EINVAL;
  }
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end != '\0') {
    snprintf(err, errlen, "%s: '%s' is not a whole number", flag, s);
    return CS_EINVAL;
  }
  if (errno == ERANGE || v < min || v > max) {
    snprintf(err, errlen, "%s: '%s' is out of range (%lld-%lld)", flag, s, min, max);
    return CS_EINVAL;
  }
  *out = v;
  return 0;
}

/* Parse a finite decimal number that must fill the whole string and lie in [min, max]. */
int opt_double(const char *flag, const char *s, double min, double max, double *out, char *err,
               size_t errlen) {
  if (s == NULL || s[0] == '\0') {
    snprintf(err, errlen, "%s: a value is required (%g-%g)", flag, min, max);
    return CS_EINVAL;
  }
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !isfinite(v)) {
    snprintf(err, errlen, "%s: '%s' is not a number", flag, s);
    return CS_EINVAL;
  }
  if (errno == ERANGE || !(v >= min && v <= max)) {
    snprintf(err, errlen, "%s: '%s' is out of range (%g-%g)", flag, s, min, max);
    return CS_EINVAL;
  }
  *out = v;
  return 0;
}

/* "SECONDS" or "MIN-MAX", both in [0, 3600] with MIN <= MAX. */
int opt_interval(const char *flag, const char *s, double *min, double *max, char *err,
                 size_t errlen) {
  char lo[64];
  /* The MIN-MAX dash is the first '-' after the first character that is not an exponent's
   * sign ("1e-3" is one number, "1e-3-2e-3" a range). */
  const char *dash = s != NULL && s[0] != '\0' ? strchr(s + 1, '-') : NULL;
  while (dash != NULL && (dash[-1] == 'e' || dash[-1] == 'E')) {
    dash = strchr(dash + 1, '-');
  }
  double a = 0;
  double b = 0;
  if (s == NULL || s[0] == '\0') {
    snprintf(err, errlen, "%s: a value is required (SECONDS or MIN-MAX)", flag);
    return CS_EINVAL;
  }
  if (dash == NULL) {
    if (opt_double(flag, s, 0, 3600, &a, err, errlen) != 0) {
      return CS_EINVAL;
    }
    *min = a;
    *max = a;
    return 0;
  }
  size_t n = (size_t)(dash - s);
  if (n >= sizeof lo) {
    snprintf(err, errlen, "%s: '%s' is not SECONDS or MIN-MAX", flag, s);
    return CS_EINVAL;
  }
  memcpy(lo, s, n);
  lo[n] = '\0';
  if (opt_double(flag, lo, 0, 3600, &a, err, errlen) != 0 ||
      opt_double(flag, dash + 1, 0, 3600, &b, err, errlen) != 0) {
    return CS_EINVAL;
  }
  if (a > b) {
    snprintf(err, errlen, "%s: '%s': MIN is larger than MAX", flag, s);
    return CS_EINVAL;
  }
  *min = a;
  *max = b;
  return 0;
}

/* The name getopt_long's error is about, as the person typed it; see opt.h. */
const char *opt_offender(int c, char **argv, int next, int bad_opt, const char *shortopts,
                         char *buf, size_t len) {
  const char *last = next > 0 ? argv[next - 1] : "";
  int is_short =
      bad_opt > 0 && bad_opt < 256 && bad_opt != ':' && strchr(shortopts, bad_opt) != NULL;
  if (c == ':') {
    /* A value can be missing only at the end of argv: the last word names the option, unless
     * it is a bundle of short options ("-qp"), where the letter does. */
    if (strncmp(last, "--", 2) == 0) {
      return last;
    }
    snprintf(buf, len, "-%c", bad_opt);
    return buf;
  }
  /* An unknown letter is not among the short options; getopt may not have passed its word yet
   * ("-xq"), so the letter is named. Anything else (an unknown long option, "--quiet=1") is the
   * word getopt just passed. */
  if (bad_opt > 0 && bad_opt < 256 && !is_short) {
    snprintf(buf, len, "-%c", bad_opt);
    return buf;
  }
  return last;
}

/* The shared object's major version that matches the headers we were compiled with. */
#define CSV_STR_(x) #x
#define CSV_STR(x) CSV_STR_(x)
#define CSV_SONAME_MAJOR CSV_STR(CSV_MAJOR)

/* Where the libcsv shared object was found among the loaded objects. */
typedef struct loaded_lib {
  char path[PATH_MAX];
  int found;
} loaded_lib;

/* dl_iterate_phdr callback: remember the first object whose file name is libcsv.so*. */
static int find_libcsv_cb(struct dl_phdr_info *info, size_t size, void *data) {
  loaded_lib *lib = data;
  (void)size;
  if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0') {
    return 0;
  }
  const char *base = strrchr(info->dlpi_name, '/');
  base = base != NULL ? base + 1 : info->dlpi_name;
  if (strncmp(base, "libcsv.so", 9) != 0) {
    return 0;
  }
  /* The name the dynamic linker used (the soname's link, libcsv.so.3), not the file it points
   * to: Debian's file is libcsv.so.3.0.2 for the library 3.0.3, so a resolved name would print
   * a version that is not the library's. */
  snprintf(lib->path, sizeof lib->path, "%s", info->dlpi_name);
  lib->found = 1;
  return 1;
}

/* The --version text: program, the program's libraries, libcsv (the version compiled against,
 * since libcsv cannot report its own at run time, and the object loaded), OS and CPU count. */
void opt_print_version(const char *prog, const opt_version_lib *libs, size_t nlibs) {
  loaded_lib lib;
  struct utsname un;
  void *handle = NULL;
  size_t i;
  memset(&lib, 0, sizeof lib);
  dl_iterate_phdr(find_libcsv_cb, &lib);
  if (!lib.found) {
    /* A program that does not read CSV has no reason to load libcsv (the linker drops unused
     * libraries): load it now to report the object the dynamic linker would use. */
    handle = dlopen("libcsv.so." CSV_SONAME_MAJOR, RTLD_LAZY | RTLD_LOCAL);
    if (handle != NULL) {
      dl_iterate_phdr(find_libcsv_cb, &lib);
    }
  }
  printf("%s (csvstream) %s\n", prog, CSVSTREAM_VERSION);
  for (i = 0; i < nlibs; i++) {
    printf("%s %s\n", libs[i].name, libs[i].version);
  }
  if (lib.found) {
    printf("libcsv %d.%d.%d (compiled against; loaded from %s)\n", CSV_MAJOR, CSV_MINOR,
           CSV_RELEASE, lib.path);
  } else {
    printf("libcsv %d.%d.%d (compiled against; no shared libcsv.so.%s loaded)\n", CSV_MAJOR,
           CSV_MINOR, CSV_RELEASE, CSV_SONAME_MAJOR);
  }
  if (uname(&un) == 0) {
    printf("OS %s %s %s\n", un.sysname, un.release, un.machine);
  } else {
    printf("OS unknown (uname: %s)\n", strerror(errno));
  }
  printf("CPUs %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
  fflush(stdout);
  if (handle != NULL) {
    dlclose(handle);
  }
}
