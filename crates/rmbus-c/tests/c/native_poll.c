/*
 * rmbus.h inside a program's own poll() loop: two entities in one process,
 * one serving RPC ctest.add, the other calling it and sending a reliable
 * command with an outcome callback. Exits 0 when the call returned the sum
 * and the command was acknowledged.
 */

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmbus.h"

static int returned, delivered, commands, requests, peers, quits, closed_calls;
static rmbus_entity *server;

static void on_request(void *user, uint64_t request, const char *src, const char *name,
                       const char *args)
{
    int a, b, code;
    char values[64];
    (void) user;
    requests++;
    if (sscanf(args, "%d %d", &a, &b) != 2) {
        code = rmbus_reply(server, request, 0, "BAD_ARGS", "two integers, please", NULL);
    } else {
        snprintf(values, sizeof values, "%d", a + b);
        code = rmbus_reply(server, request, 1, NULL, NULL, values);
    }
    printf("request %s from %s (%s): reply %s\n", name, src, args, rmbus_code_name(code));
    /* Re-entering rmbus_process from a callback is refused, not a crash. */
    printf("process from callback: %s\n", rmbus_code_name(rmbus_process(server)));
}

static void on_return(void *user, const rmbus_return *r)
{
    (void) user;
    printf("returned %s %s values (%s) from %s\n", r->outcome, r->result, r->values, r->callee);
    returned = strcmp(r->outcome, "ok") == 0 && strcmp(r->values, "5") == 0;
}

static void on_outcome(void *user, int ok)
{
    printf("outcome %s for %s\n", ok ? "delivered" : "failed", (const char *) user);
    delivered = ok;
}

static void on_command(void *user, const char *src, const char *command, const char *args,
                       int reliable)
{
    (void) user;
    printf("command %s (%s) from %s, %s\n", command, args, src, reliable ? "reliable" : "unreliable");
    if (strcmp(command, "mbus.quit") == 0) {
        quits++;
    } else {
        commands++;
    }
}

/* A request the server keeps open: the client closes before it returns. */
static void on_hold(void *user, uint64_t request, const char *src, const char *name,
                    const char *args)
{
    (void) user;
    (void) src;
    (void) args;
    printf("holding request %llu (%s)\n", (unsigned long long) request, name);
    requests++;
}

/* Called by rmbus_close for the call still open. */
static void on_closed(void *user, const rmbus_return *r)
{
    rmbus_entity *client = (rmbus_entity *) user;
    int code = rmbus_send(client, "()", "ctest.late", "", 0, NULL, NULL);
    printf("open call ended %s; a send from it: %s\n", r->outcome, rmbus_code_name(code));
    closed_calls += strcmp(r->outcome, "closed") == 0 && code == RMBUS_ERR_CLOSED;
}

static void on_peer(void *user, const char *address, int joined)
{
    (void) user;
    (void) address;
    (void) joined;
    peers++;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void)
{
    rmbus_entity *client;
    rmbus_entity *all[2];
    char error[256];
    int code, called = 0, sent = 0;
    double deadline = now_s() + 20.0;

    server = rmbus_open(NULL, "(app:ctest module:server)", &code, error, sizeof error);
    client = rmbus_open(NULL, "(app:ctest module:client)", &code, error, sizeof error);
    if (server == NULL || client == NULL) {
        printf("rmbus_open: %s: %s\n", rmbus_code_name(code), error);
        return 1;
    }
    all[0] = server;
    all[1] = client;
    printf("server %s\n", rmbus_address(server));
    rmbus_serve(server, "ctest.add", on_request, NULL);
    rmbus_on_command(server, on_command, NULL);
    rmbus_on_peer(client, on_peer, NULL);

    while (!(returned && delivered && commands) && now_s() < deadline) {
        struct pollfd fds[2];
        int i, wait = 100;
        for (i = 0; i < 2; i++) {
            int64_t t = rmbus_timeout_ms(all[i]);
            fds[i].fd = rmbus_fd(all[i]);
            fds[i].events = POLLIN;
            if (t >= 0 && t < wait) {
                wait = (int) t;
            }
        }
        poll(fds, 2, wait);
        for (i = 0; i < 2; i++) {
            rmbus_process(all[i]);
        }
        /* Once the client has heard of the server: call, and send. */
        if (!called && peers > 0) {
            code = rmbus_call(client, "(module:server)", "ctest.add", "2 3", 2000, on_return, NULL);
            printf("call: %s %s\n", rmbus_code_name(code), rmbus_error(client));
            called = 1;
        }
        if (!sent && peers > 0) {
            code = rmbus_send(client, "(module:server)", "ctest.note", "\"hi\" (1 2)", 1,
                              on_outcome, "ctest.note");
            printf("send: %s\n", rmbus_code_name(code));
            sent = 1;
        }
    }
    /* A peer's mbus.quit reaches the command callback. */
    code = rmbus_send(client, "(module:server)", "mbus.quit", "", 0, NULL, NULL);
    printf("quit: %s %s\n", rmbus_code_name(code), rmbus_error(client));
    while (quits == 0 && now_s() < deadline) {
        struct pollfd fd = {rmbus_fd(server), POLLIN, 0};
        poll(&fd, 1, 100);
        rmbus_process(server);
    }
    /* A call still open when the client closes ends "closed", in its
     * callback, before rmbus_close returns. */
    rmbus_serve(server, "ctest.hold", on_hold, NULL);
    code = rmbus_call(client, "(module:server)", "ctest.hold", "", 10000, on_closed, client);
    printf("hold: %s\n", rmbus_code_name(code));
    while (requests < 2 && now_s() < deadline) {
        struct pollfd fds[2] = {{rmbus_fd(server), POLLIN, 0}, {rmbus_fd(client), POLLIN, 0}};
        poll(fds, 2, 100);
        rmbus_process(server);
        rmbus_process(client);
    }
    printf("requests %d\n", requests);
    rmbus_close(client);
    rmbus_close(server);
    if (returned && delivered && commands == 1 && quits == 1 && requests == 2 && closed_calls == 1) {
        printf("done\n");
        return 0;
    }
    printf("deadline\n");
    return 1;
}
