/* summary.h -- what the producer says at the end: the summary lines and the --stats-json file. */
#ifndef PRODUCER_SUMMARY_H
#define PRODUCER_SUMMARY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "producer.h"

/* "70,012" into buf; returns buf. */
char *summary_thousands(uint64_t v, char *buf, size_t len);

/* Print the end-of-run summary lines (sent, bytes, duration, rate, blocked time, impairment,
 * too_big, connection status) to out (stdout, or stderr when --stats-json - holds stdout);
 * a warning about records never written goes to the log. Returns 0, or CS_EIO when out
 * could not be written (errno says why). */
int summary_print(const producer *p, FILE *out);

/* Write the --stats-json object to path. Returns 0, or a negative code with a message naming
 * the file in err. */
int summary_write_json(const producer *p, const char *path, char *err, size_t errlen);

#endif
