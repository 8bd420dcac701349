/*
 * parse_number: the command-line numbers of the bench's plain C servers (udp_echo_baseline,
 * enet_echo): a whole decimal within [min, max], or a usage error (exit 2) that names the
 * program, the option and what was given.
 */
#ifndef PRISM_BENCH_PARSE_NUMBER_H
#define PRISM_BENCH_PARSE_NUMBER_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static long parse_number_of(const char *program, const char *text, long min, long max,
                            const char *what) {
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
    fprintf(stderr, "%s: %s must be a number from %ld to %ld, got '%s'\n", program, what, min,
            max, text);
    exit(2);
  }
  return v;
}

#endif
