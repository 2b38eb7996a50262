/*
 * Misuse of both APIs, answered as documented and never a crash: NULLs, a
 * handle used after mbus_exit, malformed addresses and arguments, a
 * reliable message to nobody, callbacks that call back into the library
 * (mbus_exit from inside the command handler included). Exits 0 if every
 * check holds.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "mbus.h"
#include "mbus_parser.h"
#include "rmbus.h"

static int failures;
static int errors_seen[MBUS_ERR_MAX];
static int commands_seen;

#define CHECK(cond) do { if (!(cond)) { printf("FAILED line %d: %s\n", __LINE__, #cond); failures++; } } while (0)

static void err_handler(int seqnum, int reason)
{
    (void) seqnum;
    if (reason > 0 && reason < MBUS_ERR_MAX) {
        errors_seen[reason]++;
    }
}

/* Exits the bus from inside the handler, then keeps using the handle. */
static void exiting_handler(char *src, char *cmd, char *args, void *data)
{
    struct mbus *m = (struct mbus *) data;
    (void) src;
    (void) args;
    if (strcmp(cmd, "ctest.bye-now") == 0) {
        commands_seen++;
        mbus_qmsg(m, "()", "ctest.last-words", "", 0);
        mbus_send(m);
        mbus_exit(m);
        mbus_qmsg(m, "()", "ctest.after-exit", "", 0);
    }
}

int main(void)
{
    struct mbus *m, *other;
    struct timeval tv = {0, 0};
    int code, i;
    char error[128];
    rmbus_entity *e;

    /* UCL API: NULL and garbage handles. */
    mbus_qmsg(NULL, "()", "x", "", 0);
    mbus_send(NULL);
    mbus_retransmit(NULL);
    mbus_heartbeat(NULL, 1);
    CHECK(mbus_recv(NULL, NULL, &tv) == 0);
    CHECK(mbus_addr_valid(NULL, "()") == 0);
    CHECK(mbus_sent_all(NULL) == 0);
    CHECK(mbus_waiting_ack(NULL) == 0);
    CHECK(mbus_rendezvous_go(NULL, "t", NULL, 1) == NULL);
    CHECK(strstr(mbus_last_error(NULL), "not a live mbus handle") != NULL);
    mbus_exit(NULL);
    mbus_exit((struct mbus *) 0x1234);

    /* A malformed own address: NULL, where UCL aborts. */
    CHECK(mbus_init(NULL, err_handler, "(app:ctest module:") == NULL);
    CHECK(mbus_init(NULL, err_handler, NULL) == NULL);

    m = mbus_init(NULL, err_handler, "(app:ctest module:misuse)");
    CHECK(m != NULL);
    if (m == NULL) {
        return 1;
    }
    CHECK(strcmp(mbus_last_error(m), "") == 0);
    /* Bad destination, command and arguments: nothing queued, a reason. */
    mbus_qmsg(m, "(app:", "ctest.x", "", 0);
    CHECK(strstr(mbus_last_error(m), "address") != NULL);
    mbus_qmsg(m, "()", "ctest.x", "(1 2", 0);
    CHECK(strstr(mbus_last_error(m), "arguments") != NULL);
    mbus_qmsg(m, "()", "ctest.x", "\"unterminated", 0);
    CHECK(strstr(mbus_last_error(m), "unterminated") != NULL);
    mbus_qmsg(m, "()", "no spaces allowed", "", 0);
    CHECK(strstr(mbus_last_error(m), "command") != NULL);
    mbus_qmsg(m, "()", NULL, "", 0);
    CHECK(strstr(mbus_last_error(m), "NULL") != NULL);
    mbus_qmsg(m, "()", "ctest.x", "\"\xff\"", 0);
    CHECK(strstr(mbus_last_error(m), "UTF-8") != NULL);
    mbus_qmsgf(m, "()", 0, "ctest.x", NULL);
    CHECK(strstr(mbus_last_error(m), "format") != NULL);
    CHECK(mbus_sent_all(m) == 1);
    CHECK(mbus_addr_valid(m, "(app:") == 0);

    /* A reliable message to nobody: MBUS_DESTINATION_UNKNOWN, nothing sent. */
    mbus_qmsgf(m, "(app:nobody)", 1, "ctest.x", "%d", 1);
    mbus_send(m);
    CHECK(errors_seen[MBUS_DESTINATION_UNKNOWN] == 1);
    CHECK(mbus_sent_all(m) == 1);

    /* Two entities that both match a subset: MBUS_DESTINATION_NOT_UNIQUE. */
    /* Started without a handler, given one later (as RAT's ui does). */
    other = mbus_init(NULL, err_handler, "(app:ctest module:twin)");
    mbus_cmd_handler(other, exiting_handler);
    {
        struct mbus *third = mbus_init(NULL, err_handler, "(app:ctest module:twin2)");
        for (i = 0; i < 100 && !(mbus_addr_valid(m, "(module:twin)") && mbus_addr_valid(m, "(module:twin2)")); i++) {
            tv.tv_sec = 0;
            tv.tv_usec = 50000;
            mbus_recv(m, NULL, &tv);
            tv.tv_usec = 0;
            mbus_recv(other, other, &tv);
            mbus_recv(third, NULL, &tv);
        }
        mbus_qmsg(m, "(app:ctest)", "ctest.x", "", 1);
        mbus_send(m);
        CHECK(errors_seen[MBUS_DESTINATION_NOT_UNIQUE] == 1);
        mbus_exit(third);
    }

    /* A handler that calls mbus_qmsg, mbus_send and mbus_exit on its own
     * handle, then uses it once more: the outer mbus_recv returns. */
    mbus_qmsg(m, "(module:twin)", "ctest.bye-now", "", 1);
    mbus_send(m);
    for (i = 0; i < 100 && commands_seen == 0; i++) {
        tv.tv_sec = 0;
        tv.tv_usec = 50000;
        mbus_recv(other, other, &tv);
        mbus_recv(m, NULL, &tv);
        mbus_retransmit(m);
    }
    CHECK(commands_seen == 1);
    /* The handle is dead now: every call is an error, never a crash. */
    CHECK(mbus_recv(other, other, &tv) == 0);
    CHECK(strstr(mbus_last_error(other), "not a live mbus handle") != NULL);
    mbus_exit(other);

    /* What is still queued at mbus_exit is sent, and a refusal still
     * reaches the error handler. */
    mbus_qmsg(m, "(app:nobody)", "ctest.x", "", 1);
    mbus_exit(m);
    CHECK(errors_seen[MBUS_DESTINATION_UNKNOWN] == 2);
    mbus_qmsg(m, "()", "ctest.x", "", 0);
    mbus_send(m);
    CHECK(mbus_sent_all(m) == 0);

    /* The native API. */
    CHECK(rmbus_process(NULL) == RMBUS_ERR_ARGUMENT);
    CHECK(rmbus_fd(NULL) == -1);
    CHECK(rmbus_timeout_ms(NULL) == -1);
    CHECK(rmbus_close(NULL) == RMBUS_OK);
    CHECK(strcmp(rmbus_code_name(RMBUS_ERR_NOT_UNIQUE), "RMBUS_ERR_NOT_UNIQUE") == 0);
    CHECK(strcmp(rmbus_code_name(-5), "RMBUS_ERR_UNKNOWN_CODE") == 0);
    e = rmbus_open(NULL, "(app:", &code, error, sizeof error);
    CHECK(e == NULL && code == RMBUS_ERR_ARGUMENT && strstr(error, "address") != NULL);
    e = rmbus_open("/nonexistent/dir/mbus.conf", "(app:ctest)", &code, error, sizeof error);
    CHECK(e == NULL && code == RMBUS_ERR_CONFIG);
    e = rmbus_open(NULL, "(app:ctest module:native)", &code, NULL, 0);
    CHECK(e != NULL && code == RMBUS_OK);
    if (e != NULL) {
        CHECK(rmbus_send(e, "(app:nobody)", "ctest.x", "", 1, NULL, NULL) == RMBUS_ERR_UNKNOWN_DESTINATION);
        CHECK(strstr(rmbus_error(e), "not a known entity") != NULL);
        CHECK(rmbus_send(e, "()", "ctest.x", "(1", 0, NULL, NULL) == RMBUS_ERR_ARGUMENT);
        CHECK(rmbus_send(e, NULL, "ctest.x", "", 0, NULL, NULL) == RMBUS_ERR_ARGUMENT);
        CHECK(rmbus_send(e, "()", "ctest.x", "1 \"two\"", 0, NULL, NULL) == RMBUS_OK);
        CHECK(strcmp(rmbus_error(e), "") == 0);
        CHECK(rmbus_reply(e, 12345, 1, NULL, NULL, NULL) == RMBUS_ERR_NO_REQUEST);
        CHECK(rmbus_serve(e, "bad name", NULL, NULL) == RMBUS_ERR_ARGUMENT);
        CHECK(rmbus_process(e) == RMBUS_OK);
        CHECK(rmbus_close(e) == RMBUS_OK);
    }

    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
