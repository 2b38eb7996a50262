/*
 * A program written only against UCL common's mbus.h and mbus_parser.h, in
 * the style of a RAT component: mbus_init with a command handler, a
 * rendezvous, mbus_qmsgf reliable and unreliable, an mbus_recv loop,
 * mbus_exit.
 *
 *   ucl_component engine   waits for the ui (mbus_rendezvous_waiting),
 *                          sends it ctest.hello reliably and ctest.level
 *                          unreliably, and waits for its ctest.reply
 *   ucl_component ui       answers the engine's wait (mbus_rendezvous_go),
 *                          answers ctest.hello with ctest.reply from inside
 *                          its command handler
 *   ucl_component lost     waits to hear (app:ctest module:mute), sends it
 *                          a reliable message and waits for the error
 *
 * It prints what happens, one line each, and exits 0 when its part is done,
 * 1 on a deadline (20 s).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "mbus.h"
#include "mbus_parser.h"

static int got_hello, got_reply, got_level, errors;
static int last_error_reason;

static void err_handler(int seqnum, int reason)
{
    printf("error %d %s\n", seqnum, mbus_errlist[reason]);
    fflush(stdout);
    errors++;
    last_error_reason = reason;
}

static void cmd_handler(char *src, char *cmd, char *args, void *data)
{
    struct mbus *m = (struct mbus *) data;
    struct mbus_parser *mp;

    if (strcmp(cmd, "ctest.hello") == 0) {
        char *text;
        int n;
        mp = mbus_parse_init(args);
        if (mbus_parse_str(mp, &text) && mbus_parse_int(mp, &n)) {
            printf("hello from %s: %s %d\n", src, mbus_decode_str(text), n);
            got_hello = 1;
            /* Answered from inside the handler, as RAT's handlers do. */
            mbus_qmsgf(m, src, 1, "ctest.reply", "%d", n + 1);
            mbus_send(m);
        } else {
            printf("bad ctest.hello (%s)\n", args);
        }
        mbus_parse_done(mp);
    } else if (strcmp(cmd, "ctest.reply") == 0) {
        int n;
        mp = mbus_parse_init(args);
        if (mbus_parse_int(mp, &n)) {
            printf("reply %d\n", n);
            got_reply = 1;
        }
        mbus_parse_done(mp);
    } else if (strcmp(cmd, "ctest.level") == 0) {
        double d;
        mp = mbus_parse_init(args);
        if (mbus_parse_flt(mp, &d)) {
            printf("level %.2f\n", d);
            got_level = 1;
        }
        mbus_parse_done(mp);
    }
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* The main loop of a UCL program: heartbeat, receive, send, retransmit. */
static int run_until(struct mbus *m, int *flag, double deadline)
{
    struct timeval timeout;
    while (!(*flag && mbus_sent_all(m))) {
        if (now_s() > deadline) {
            return 0;
        }
        mbus_heartbeat(m, 1);
        timeout.tv_sec = 0;
        timeout.tv_usec = 50000;
        mbus_recv(m, m, &timeout);
        mbus_send(m);
        mbus_retransmit(m);
    }
    return 1;
}

int main(int argc, char *argv[])
{
    struct mbus *m;
    char *peer;
    double deadline = now_s() + 20.0;
    int done = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: ucl_component engine|ui|lost\n");
        return 2;
    }
    if (strcmp(argv[1], "engine") == 0) {
        char *text;
        m = mbus_init(cmd_handler, err_handler, "(app:ctest module:engine)");
        if (m == NULL) {
            printf("mbus_init failed\n");
            return 1;
        }
        peer = mbus_rendezvous_waiting(m, "(app:ctest module:ui)", "ctest-ready", m, 20000000);
        if (peer == NULL) {
            printf("no rendezvous\n");
            return 1;
        }
        printf("rendezvous with %s\n", peer);
        text = mbus_encode_str("a \"quoted\" text");
        mbus_qmsgf(m, peer, 1, "ctest.hello", "%s %d", text, 41);
        xfree(text);
        mbus_qmsgf(m, peer, 0, "ctest.level", "%.2f", 0.5);
        mbus_send(m);
        xfree(peer);
        done = run_until(m, &got_reply, deadline);
    } else if (strcmp(argv[1], "ui") == 0) {
        m = mbus_init(cmd_handler, err_handler, "(app:ctest module:ui)");
        if (m == NULL) {
            printf("mbus_init failed\n");
            return 1;
        }
        peer = mbus_rendezvous_go(m, "ctest-ready", m, 20000000);
        if (peer == NULL) {
            printf("no rendezvous\n");
            return 1;
        }
        printf("rendezvous with %s\n", peer);
        xfree(peer);
        done = run_until(m, &got_hello, deadline);
        /* Wait for the level too (it may come after the hello). */
        done = done && run_until(m, &got_level, deadline);
    } else if (strcmp(argv[1], "lost") == 0) {
        struct timeval timeout;
        m = mbus_init(cmd_handler, err_handler, "(app:ctest module:sender)");
        if (m == NULL) {
            printf("mbus_init failed\n");
            return 1;
        }
        while (!mbus_addr_valid(m, "(app:ctest module:mute)") && now_s() < deadline) {
            timeout.tv_sec = 0;
            timeout.tv_usec = 50000;
            mbus_recv(m, m, &timeout);
        }
        printf("heard the mute entity\n");
        mbus_qmsg(m, "(app:ctest module:mute)", "ctest.anyone", "", 1);
        mbus_send(m);
        printf("waiting ack %d\n", mbus_waiting_ack(m));
        while (errors == 0 && now_s() < deadline) {
            timeout.tv_sec = 0;
            timeout.tv_usec = 50000;
            mbus_recv(m, m, &timeout);
            mbus_retransmit(m);
        }
        done = errors == 1 && last_error_reason == MBUS_MESSAGE_LOST && mbus_sent_all(m);
    } else {
        fprintf(stderr, "unknown role %s\n", argv[1]);
        return 2;
    }
    printf(done ? "done\n" : "deadline\n");
    fflush(stdout);
    mbus_exit(m);
    return done ? 0 : 1;
}
