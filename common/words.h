/* words.h -- counts in messages for people: "1,234,567", "1 record" / "2 records", and the one
 * rule for when a rate is worth printing. JSON keeps plain digits (json.h); these are for the
 * summaries, the log lines and the tables that people read. */
#ifndef CSVSTREAM_WORDS_H
#define CSVSTREAM_WORDS_H

#include <stddef.h>
#include <stdint.h>

/* Big enough for any count with its separators and a noun of a few words. */
#define WORDS_BUF 64

/* Shortest span, in µs, over which a rate is printed: a burst handed over in one read or
 * within a fraction of a millisecond gives 0 or a rate of tens of thousands a second that says
 * nothing. Both programs use it (the consumer's STATS_RATE_MIN_SPAN_US is the same number, a
 * unit test holds them together). */
#define WORDS_RATE_MIN_SPAN_US 10000

/* n with commas between groups of three digits ("1,000,000", "999", "0") into buf (len
 * bytes, cut short but always terminated when too small). Returns buf. */
char *words_count(char *buf, size_t len, uint64_t n);

/* one when n is 1, else many ("record" / "records"). */
const char *words_plural(uint64_t n, const char *one, const char *many);

/* The count and its noun, "1 record", "0 records", "70,012 records", into buf. Returns buf. */
char *words_count_of(char *buf, size_t len, uint64_t n, const char *one, const char *many);

/* 1 if span_us is long enough for a rate to mean something (WORDS_RATE_MIN_SPAN_US). */
int words_rate_known(uint64_t span_us);

/* A size for people: "512 bytes", "64 KiB", "1.5 MiB", "2 GiB" (binary units, at most one
 * decimal). Returns buf. */
char *words_bytes(char *buf, size_t len, uint64_t n);

/* A rate per second with separators and one decimal ("578,313.3"), or "-" when span_us is
 * under WORDS_RATE_MIN_SPAN_US; n events over span_us µs. Returns buf. */
char *words_rate(char *buf, size_t len, uint64_t n, uint64_t span_us);

#endif
