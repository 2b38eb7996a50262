/*
 * mbus_parser.h on tricky arguments, as a UCL program parses a command's
 * arguments. Exits 0 if every check holds; prints each failure.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "mbus_parser.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { printf("FAILED line %d: %s\n", __LINE__, #cond); failures++; } } while (0)

int main(void)
{
    struct mbus_parser *mp;
    char *s, *l;
    int i;
    double d;
    struct timeval ts;

    /* A string with escapes, an integer, a float, a nested list, a symbol. */
    {
        char args[] = "  \"say \\\"hi\\\" (now)\\n\" -42 3.25 (1 \"a)b\" (x)) SYM_1.x ";
        mp = mbus_parse_init(args);
        CHECK(mbus_parse_str(mp, &s));
        CHECK(strcmp(s, "\"say \\\"hi\\\" (now)\\n\"") == 0);
        CHECK(strcmp(mbus_decode_str(s), "say \"hi\" (now)\n") == 0);
        CHECK(mbus_parse_int(mp, &i) && i == -42);
        CHECK(mbus_parse_flt(mp, &d) && d == 3.25);
        CHECK(mbus_parse_lst(mp, &l));
        CHECK(strcmp(l, "1 \"a)b\" (x)") == 0);
        CHECK(mbus_parse_sym(mp, &s) && strcmp(s, "SYM_1.x") == 0);
        /* Nothing left. */
        CHECK(!mbus_parse_sym(mp, &s));
        CHECK(!mbus_parse_int(mp, &i));
        mbus_parse_done(mp);
    }
    /* A list parsed from its own inside: UCL programs do it this way. */
    {
        char args[] = "(1 2) (\"x\")";
        char *inner;
        struct mbus_parser *mp2;
        mp = mbus_parse_init(args);
        CHECK(mbus_parse_lst(mp, &inner));
        mp2 = mbus_parse_init(inner);
        CHECK(mbus_parse_int(mp2, &i) && i == 1);
        CHECK(mbus_parse_int(mp2, &i) && i == 2);
        CHECK(!mbus_parse_int(mp2, &i));
        mbus_parse_done(mp2);
        CHECK(mbus_parse_lst(mp, &inner) && strcmp(inner, "\"x\"") == 0);
        mbus_parse_done(mp);
    }
    /* Wrong types fail and leave the value for the right call. */
    {
        char args[] = "12x \"open";
        mp = mbus_parse_init(args);
        CHECK(!mbus_parse_int(mp, &i));
        CHECK(!mbus_parse_flt(mp, &d));
        CHECK(!mbus_parse_str(mp, &s));
        CHECK(mbus_parse_sym(mp, &s) && strcmp(s, "12x") == 0);
        CHECK(!mbus_parse_str(mp, &s)); /* unterminated */
        CHECK(!mbus_parse_lst(mp, &l));
        mbus_parse_done(mp);
    }
    /* Where UCL aborts: an Integer beyond int is refused, not fatal. */
    {
        char args[] = "99999999999 2147483647 -2147483648";
        mp = mbus_parse_init(args);
        CHECK(!mbus_parse_int(mp, &i));
        CHECK(mbus_parse_flt(mp, &d) && d == 99999999999.0);
        CHECK(mbus_parse_int(mp, &i) && i == 2147483647);
        CHECK(mbus_parse_int(mp, &i) && i == -2147483647 - 1);
        mbus_parse_done(mp);
    }
    /* TimeStamps: milliseconds since 1970. */
    {
        char args[] = "1020000000400 7 x";
        mp = mbus_parse_init(args);
        CHECK(mbus_parse_ts(mp, &ts) && ts.tv_sec == 1020000000 && ts.tv_usec == 400000);
        CHECK(mbus_parse_ts(mp, &ts) && ts.tv_sec == 0 && ts.tv_usec == 7000);
        CHECK(!mbus_parse_ts(mp, &ts));
        mbus_parse_done(mp);
    }
    /* Where UCL asserts: an unquoted string gives NULL and stays as it was. */
    {
        char plain[] = "not quoted";
        char escaped_end[] = "\"ends in \\\"";
        char ucl_space[] = "\"a\\ b\"";
        CHECK(mbus_decode_str(plain) == NULL && strcmp(plain, "not quoted") == 0);
        CHECK(mbus_decode_str(escaped_end) == NULL);
        CHECK(strcmp(mbus_decode_str(ucl_space), "a b") == 0); /* UCL's "\ " */
    }
    /* Encoding: only \\, \" and \n are escaped; the result is ours to free. */
    {
        char *e = mbus_encode_str("a b\"c\\d\ne");
        CHECK(e != NULL && strcmp(e, "\"a b\\\"c\\\\d\\ne\"") == 0);
        CHECK(strcmp(mbus_decode_str(e), "a b\"c\\d\ne") == 0);
        xfree(e);
        CHECK(mbus_encode_str(NULL) == NULL);
        xfree(NULL);
    }
    /* Misuse: NULL and a parser used after mbus_parse_done. */
    {
        char args[] = "1";
        CHECK(mbus_parse_init(NULL) == NULL);
        CHECK(!mbus_parse_int(NULL, &i));
        mp = mbus_parse_init(args);
        CHECK(!mbus_parse_int(mp, NULL));
        mbus_parse_done(mp);
        CHECK(!mbus_parse_int(mp, &i));
        mbus_parse_done(mp);
        CHECK(mbus_decode_str(NULL) == NULL);
    }
    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
