/* sniff.h -- guess a CSV file's delimiter from its first lines (--delimiter auto). */
#ifndef CSVSTREAM_SNIFF_H
#define CSVSTREAM_SNIFF_H

#include <stddef.h>
#include <stdint.h>

/* The delimiters sniffing chooses among, in the order ties are broken. */
#define SNIFF_CANDIDATES ",\t;|:"
/* Lines looked at, at most. */
#define SNIFF_MAX_LINES 50

/* The delimiter of the text s (the start of a file, len bytes): the candidate that occurs the
 * same number of times, at least once, on the most lines, outside quoted fields, after the
 * first skip_lines lines and ignoring blank lines and lines that start with comment (0: none).
 * Ties go to the earlier of SNIFF_CANDIDATES; no candidate at all gives ','. A last line cut
 * off by the end of s counts only when it is the only one. Writes the reason for people into
 * why ("';': 3 on each of 12 lines"). */
char sniff_delimiter(const char *s, size_t len, uint64_t skip_lines, char comment, char *why,
                     size_t whylen);

/* How a delimiter is shown in messages: "','", "tab". Returns buf. */
const char *sniff_delimiter_name(char c, char *buf, size_t len);

#endif
