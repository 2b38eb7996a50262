/*
 * Every function and object the three headers declare, taken with the
 * exact type the header gives it: compiling this checks the declarations,
 * linking it (shared and static) checks that the library exports each one.
 * Run, it checks that none is NULL and that mbus_errlist reads as UCL's.
 */

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "mbus.h"
#include "mbus_parser.h"
#include "rmbus.h"

int main(void)
{
    const void *all[] = {
        (const void *) mbus_init, (const void *) mbus_cmd_handler, (const void *) mbus_exit,
        (const void *) mbus_addr_valid, (const void *) mbus_qmsg, (const void *) mbus_qmsgf,
        (const void *) mbus_send, (const void *) mbus_recv, (const void *) mbus_retransmit,
        (const void *) mbus_heartbeat, (const void *) mbus_waiting_ack, (const void *) mbus_sent_all,
        (const void *) mbus_rendezvous_waiting, (const void *) mbus_rendezvous_go,
        (const void *) mbus_last_error, (const void *) mbus_parse_init, (const void *) mbus_parse_done,
        (const void *) mbus_parse_lst, (const void *) mbus_parse_str, (const void *) mbus_parse_sym,
        (const void *) mbus_parse_int, (const void *) mbus_parse_ts, (const void *) mbus_parse_flt,
        (const void *) mbus_decode_str, (const void *) mbus_encode_str, (const void *) xfree,
        (const void *) rmbus_code_name, (const void *) rmbus_open, (const void *) rmbus_close,
        (const void *) rmbus_error, (const void *) rmbus_address, (const void *) rmbus_fd,
        (const void *) rmbus_timeout_ms, (const void *) rmbus_process, (const void *) rmbus_on_command,
        (const void *) rmbus_on_peer, (const void *) rmbus_send, (const void *) rmbus_call,
        (const void *) rmbus_serve, (const void *) rmbus_reply,
    };
    /* UCL's exact types (from its mbus.h) for what a UCL program assigns. */
    struct mbus *(*init)(void (*)(char *, char *, char *, void *), void (*)(int, int), char *) = mbus_init;
    void (*qmsgf)(struct mbus *, const char *, int, const char *, const char *, ...) = mbus_qmsgf;
    char *(*waiting)(struct mbus *, char *, char *, void *, const long) = mbus_rendezvous_waiting;
    int (*parse_ts)(struct mbus_parser *, struct timeval *) = mbus_parse_ts;
    size_t i;
    int failures = 0;

    for (i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (all[i] == NULL) {
            printf("symbol %zu is NULL\n", i);
            failures++;
        }
    }
    if (init == NULL || qmsgf == NULL || waiting == NULL || parse_ts == NULL) {
        failures++;
    }
    for (i = 0; i < MBUS_ERR_MAX + 1; i++) {
        printf("%s\n", mbus_errlist[i]);
    }
    if (strcmp(mbus_errlist[MBUS_DESTINATION_NOT_UNIQUE], "MBUS_DESTINATION_NOT_UNIQUE") != 0) {
        failures++;
    }
    printf("%zu symbols, %d failures\n", sizeof all / sizeof all[0], failures);
    return failures == 0 ? 0 : 1;
}
