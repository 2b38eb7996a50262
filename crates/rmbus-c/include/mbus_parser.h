/*
 * mbus_parser.h: the Mbus argument parser of the UCL common library
 * (version 1.2.19), implemented by rmbus.
 *
 * As in UCL, a parser works in place: mbus_parse_init(str) keeps str, the
 * parse functions write NUL bytes into it and hand back pointers into it.
 * str must stay valid, and be changed by nobody else, until
 * mbus_parse_done(). Every function returns 1 on success and 0 otherwise
 * (where UCL aborts on an Integer beyond int, rmbus returns 0). A parser
 * handle is checked on every call: one used after mbus_parse_done() gets 0.
 */

#ifndef _MBUS_PARSER_H
#define _MBUS_PARSER_H

#include <sys/time.h>

#if defined(__cplusplus)
extern "C" {
#endif

struct mbus_parser;

/* A parser over str (NULL: returns NULL). */
struct mbus_parser *mbus_parse_init(char *str);
/* Ends the parser (str itself is the caller's). */
void                mbus_parse_done(struct mbus_parser *m);
/* The next value if it is a list: *l points at its contents, without the
 * parentheses. */
int                 mbus_parse_lst(struct mbus_parser *m, char **l);
/* The next value if it is a string: *s points at it quoted, as
 * mbus_decode_str() takes it. */
int                 mbus_parse_str(struct mbus_parser *m, char **s);
/* The next run of non-space characters. */
int                 mbus_parse_sym(struct mbus_parser *m, char **s);
/* The next value if it is a decimal Integer that fits an int. */
int                 mbus_parse_int(struct mbus_parser *m, int *i);
/* The next value if it is a TimeStamp (milliseconds since 1970). */
int                 mbus_parse_ts(struct mbus_parser *m, struct timeval *ts);
/* The next value if it is a finite number. */
int                 mbus_parse_flt(struct mbus_parser *m, double *d);
/* Removes the quotes and escapes of a string in place and returns it, or
 * NULL (leaving s as it was) if s is not a quoted string or is longer than
 * 64 KiB (UCL asserts on the first). */
char               *mbus_decode_str(char *s);
/* s quoted and escaped (\\, \" and \n), in memory to free with xfree();
 * NULL if s is NULL or longer than 64 KiB. */
char               *mbus_encode_str(const char *s);
/* Frees what mbus_encode_str() and the rendezvous functions return (NULL
 * is allowed): it is free(). UCL programs get it from UCL's memory.h; one
 * that also links UCL's library gets UCL's xfree, which frees the same
 * memory unless UCL was built with DEBUG_MEM. */
void                xfree(void *p);

#if defined(__cplusplus)
}
#endif

#endif /* _MBUS_PARSER_H */
