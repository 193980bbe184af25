/* opt.h -- option value parsing shared by the programs: strtol/strtod with end-pointer and range
 * checks, and messages that name the flag. */
#ifndef CSVSTREAM_OPT_H
#define CSVSTREAM_OPT_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0, or CS_EINVAL with a message such as
 * "--port: '99999' is out of range (1-65535)" written to err. */
int opt_long(const char *flag, const char *s, long long min, long long max, long long *out,
             char *err, size_t errlen);
int opt_double(const char *flag, const char *s, double min, double max, double *out, char *err,
               size_t errlen);
/* "SECONDS" or "MIN-MAX" (seconds, fractions allowed, 0 <= MIN <= MAX <= 3600). */
int opt_interval(const char *flag, const char *s, double *min, double *max, char *err,
                 size_t errlen);

/* The option a getopt_long error (c is ':' for a missing value, '?' for anything else) is
 * about, as the person typed it: "--port", "-p", "--quiet=1", "-x". next is optind and
 * bad_opt optopt after the call, shortopts the option string passed to it (long options whose
 * value is a letter must have that letter there). Returns argv's word or buf. */
const char *opt_offender(int c, char **argv, int next, int bad_opt, const char *shortopts,
                         char *buf, size_t len);

/* One library line of the --version text: "NAME VERSION". */
typedef struct opt_version_lib {
  const char *name;    /* "SQLite" */
  const char *version; /* as the library reports it at run time: sqlite3_libversion() */
} opt_version_lib;

/* Print the --version text for `prog` to stdout: the program version, then the program's own
 * library lines (libs[0..nlibs), which common/ cannot know without linking them), then the
 * lines every program shares: libcsv in one line (the version compiled against, as libcsv has no
 * run-time version call, and the shared object loaded), the OS (uname) and the CPU count. */
void opt_print_version(const char *prog, const opt_version_lib *libs, size_t nlibs);

#endif
