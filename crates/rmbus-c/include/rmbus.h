/*
 * rmbus.h: rmbus's native C API, for programs written today.
 *
 * One entity on the local Message Bus (RFC 3259) per handle, driven by the
 * program's own event loop: watch rmbus_fd() for reading, wake up after
 * rmbus_timeout_ms(), and call rmbus_process() in either case; it reads,
 * runs the timers and calls the callbacks (on that thread). There is no
 * global state: handles are independent.
 *
 * Threads: a handle may be used from any thread (calls are serialised by
 * the handle's lock, which is never held while a callback runs).
 * Callbacks run inside rmbus_process() (and rmbus_close()) on the thread
 * that called it, and may call any function on the same handle except
 * rmbus_process() and rmbus_close(), which return RMBUS_ERR_REENTERED
 * there. rmbus_process() on another thread waits until the first is done,
 * so a callback must not wait for another thread that calls
 * rmbus_process() or rmbus_close() on the same handle.
 *
 * Strings: every const char * argument is a NUL-terminated string (a
 * precondition no library can check), UTF-8 where it goes on the wire
 * (addresses, command names, arguments) and for the configuration path,
 * and at most 64 KiB. Strings handed to callbacks are
 * valid until the callback returns. NULL where a string is required is
 * RMBUS_ERR_ARGUMENT. Arguments are written as the inside of an Mbus list,
 * e.g. "12 \"text\" (1 2)" (RFC 3259 section 5).
 *
 * Errors: functions return an rmbus_code (0 is RMBUS_OK); rmbus_error()
 * gives the sentence of the last failure on a handle.
 */

#ifndef RMBUS_H
#define RMBUS_H

#include <stdint.h>

#if defined(__cplusplus)
extern "C" {
#endif

/* What a function returns. */
enum rmbus_code {
    RMBUS_OK = 0,
    /* A NULL, a string that is not UTF-8, an address, command or argument
     * list that does not parse. */
    RMBUS_ERR_ARGUMENT = 1,
    /* The configuration file cannot be found, read or created. */
    RMBUS_ERR_CONFIG = 2,
    /* The sockets cannot be opened, or the keys are not usable. */
    RMBUS_ERR_BIND = 3,
    /* A reliable destination or a callee no known entity matches. */
    RMBUS_ERR_UNKNOWN_DESTINATION = 4,
    /* A reliable destination or a callee that matches several entities. */
    RMBUS_ERR_NOT_UNIQUE = 5,
    /* Too many reliable messages in flight. */
    RMBUS_ERR_BUSY = 6,
    /* The entity is closing: a send or call from a callback that
     * rmbus_close() runs. */
    RMBUS_ERR_CLOSED = 7,
    /* A socket error. */
    RMBUS_ERR_IO = 8,
    /* rmbus_process() or rmbus_close() called from one of the handle's own
     * callbacks. */
    RMBUS_ERR_REENTERED = 9,
    /* No such open request (rmbus_reply()). */
    RMBUS_ERR_NO_REQUEST = 10,
    /* A bug in rmbus, caught before it crossed into C (the sentence says
     * what). */
    RMBUS_ERR_INTERNAL = 11
};

/* The name of a code ("RMBUS_OK", ...), a static string. */
const char *rmbus_code_name(int code);

/* An entity on the bus. */
typedef struct rmbus_entity rmbus_entity;

/* Joins the bus as address (an id element is added if it has none), with
 * the configuration file config_path (NULL: $MBUS, else ~/.mbus, created
 * with fresh keys when missing). Returns NULL on failure, with the code in
 * *code and the sentence in error (either may be NULL; error_len bytes
 * including the NUL). */
rmbus_entity *rmbus_open(const char *config_path, const char *address,
                         int *code, char *error, uint32_t error_len);
/* Says bye and sends it; the outcome callbacks of sends still
 * unacknowledged (failed) and of calls still open ("closed") run; then
 * frees the entity (NULL is allowed). */
int rmbus_close(rmbus_entity *e);

/* The sentence of the last call's failure on e ("" if it succeeded): the
 * calling thread's copy, valid until its next rmbus_error(). */
const char *rmbus_error(const rmbus_entity *e);
/* Our complete address; valid until rmbus_close(). */
const char *rmbus_address(const rmbus_entity *e);
/* A descriptor that is readable while a datagram waits (-1 for NULL). */
int rmbus_fd(const rmbus_entity *e);
/* Milliseconds until rmbus_process() is due for a timer (0: now), or -1
 * when no timer is set. */
int64_t rmbus_timeout_ms(const rmbus_entity *e);
/* Reads what waits, runs the timers that are due and calls the callbacks.
 * Call it when rmbus_fd() is readable or rmbus_timeout_ms() has passed
 * (calling it at other times is harmless). */
int rmbus_process(rmbus_entity *e);

/* A command addressed to us: the sender's address, the command name, its
 * arguments (the inside of the list), and 1 if it came reliably. A peer's
 * mbus.quit (it asks us to terminate, RFC 3259 section 9.4) comes as a
 * command too; Guidelines RPCs go to rmbus_serve()'s callbacks instead. */
typedef void (*rmbus_command_cb)(void *user, const char *src, const char *command,
                                 const char *args, int reliable);
/* Sets (or with NULL removes) the command callback. */
int rmbus_on_command(rmbus_entity *e, rmbus_command_cb cb, void *user);

/* An entity joined (joined = 1) or left (0: it said bye or went silent). */
typedef void (*rmbus_peer_cb)(void *user, const char *address, int joined);
/* Sets (or with NULL removes) the peer callback. */
int rmbus_on_peer(rmbus_entity *e, rmbus_peer_cb cb, void *user);

/* A reliable message's outcome: 1 acknowledged, 0 not acknowledged within
 * 600 ms (it may still have arrived). */
typedef void (*rmbus_outcome_cb)(void *user, int delivered);
/* Sends command with args to dst. Reliably (reliable != 0), dst must
 * designate one known entity, and done (if not NULL) gets the outcome
 * later, from rmbus_process(); unreliably, done is never called. */
int rmbus_send(rmbus_entity *e, const char *dst, const char *command, const char *args,
               int reliable, rmbus_outcome_cb done, void *user);

/* How a call ended. outcome is "ok", "failed" (the callee returned
 * FAILED), "unknown", "undeliverable", "timeout", "callee_left",
 * "no_responder" or "closed"; result, description and values (the inside
 * of a list) are those of the return, "" otherwise; callee is who
 * answered. */
typedef struct rmbus_return {
    const char *outcome;
    const char *result;
    const char *description;
    const char *values;
    const char *callee;
} rmbus_return;
typedef void (*rmbus_return_cb)(void *user, const rmbus_return *r);
/* Calls RPC name with args at the one entity dst designates (Mbus
 * Guidelines section 5.2, UNICAST); done gets the return, or why there is
 * none, within timeout_ms. */
int rmbus_call(rmbus_entity *e, const char *dst, const char *name, const char *args,
               uint32_t timeout_ms, rmbus_return_cb done, void *user);

/* A request for an RPC we serve: answer it with rmbus_reply(), now or
 * later, quoting request. */
typedef void (*rmbus_request_cb)(void *user, uint64_t request, const char *src,
                                 const char *name, const char *args);
/* Serves RPC name (NULL cb: stops serving it; calls then get UNKNOWN). */
int rmbus_serve(rmbus_entity *e, const char *name, rmbus_request_cb cb, void *user);
/* Answers request: ok != 0 for OK, else FAILED; result a Symbol (NULL:
 * "OK" or "FAILED"), description (NULL: ""), values the inside of a list
 * (NULL: none). */
int rmbus_reply(rmbus_entity *e, uint64_t request, int ok, const char *result,
                const char *description, const char *values);

#if defined(__cplusplus)
}
#endif

#endif /* RMBUS_H */
