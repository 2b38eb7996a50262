/* mbus_qmsgf(): formats the arguments with vsnprintf (measuring first, so
 * there is no length limit) and hands them to mbus_qmsg(), which checks
 * everything else.
 *
 * The body is rmbus_qmsgf_impl (stable Rust cannot define a variadic
 * function). On x86-64 and 64-bit ARM the exported mbus_qmsgf is a Rust
 * trampoline that jumps here with the caller's registers and stack as they
 * were (src/ucl.rs), so that rustc exports it like every other function;
 * elsewhere mbus_qmsgf is defined below and build.rs exports it. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "mbus.h"

/* Records why mbus_qmsgf() failed before it could call mbus_qmsg(). */
void rmbus_qmsgf_failed(struct mbus *m, const char *why);

__attribute__((visibility("hidden")))
void rmbus_qmsgf_impl(struct mbus *m, const char *dest, int reliable, const char *cmnd,
                      const char *format, ...);

/* The same type as mbus.h's mbus_qmsgf. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&mbus_qmsgf), __typeof__(&rmbus_qmsgf_impl)),
               "rmbus_qmsgf_impl has mbus_qmsgf's type");

static void qmsgv(struct mbus *m, const char *dest, int reliable, const char *cmnd,
                  const char *format, va_list args)
{
    va_list again;
    int len;
    char *buffer;

    if (format == NULL) {
        rmbus_qmsgf_failed(m, "the format is NULL");
        return;
    }
    va_copy(again, args);
    len = vsnprintf(NULL, 0, format, args);
    if (len < 0) {
        va_end(again);
        rmbus_qmsgf_failed(m, "the format could not be applied (vsnprintf failed)");
        return;
    }
    buffer = malloc((size_t) len + 1);
    if (buffer == NULL) {
        va_end(again);
        rmbus_qmsgf_failed(m, "out of memory");
        return;
    }
    vsnprintf(buffer, (size_t) len + 1, format, again);
    va_end(again);
    mbus_qmsg(m, dest, cmnd, buffer, reliable);
    free(buffer);
}

void rmbus_qmsgf_impl(struct mbus *m, const char *dest, int reliable, const char *cmnd,
                      const char *format, ...)
{
    va_list args;
    va_start(args, format);
    qmsgv(m, dest, reliable, cmnd, format, args);
    va_end(args);
}

#if !defined(__x86_64__) && !defined(__aarch64__)
void mbus_qmsgf(struct mbus *m, const char *dest, int reliable, const char *cmnd,
                const char *format, ...)
{
    va_list args;
    va_start(args, format);
    qmsgv(m, dest, reliable, cmnd, format, args);
    va_end(args);
}
#endif
