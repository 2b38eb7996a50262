/* mbus_qmsgf(): formats the arguments with vsnprintf (measuring first, so
 * there is no length limit) and hands them to mbus_qmsg(), which checks
 * everything else. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "mbus.h"

/* Records why mbus_qmsgf() failed before it could call mbus_qmsg(). */
void rmbus_qmsgf_failed(struct mbus *m, const char *why);

void mbus_qmsgf(struct mbus *m, const char *dest, int reliable, const char *cmnd, const char *format, ...)
{
    va_list ap;
    int len;
    char *buffer;

    if (format == NULL) {
        rmbus_qmsgf_failed(m, "mbus_qmsgf: the format is NULL");
        return;
    }
    va_start(ap, format);
    len = vsnprintf(NULL, 0, format, ap);
    va_end(ap);
    if (len < 0) {
        rmbus_qmsgf_failed(m, "mbus_qmsgf: the format could not be applied (vsnprintf failed)");
        return;
    }
    buffer = malloc((size_t) len + 1);
    if (buffer == NULL) {
        rmbus_qmsgf_failed(m, "mbus_qmsgf: out of memory");
        return;
    }
    va_start(ap, format);
    vsnprintf(buffer, (size_t) len + 1, format, ap);
    va_end(ap);
    mbus_qmsg(m, dest, cmnd, buffer, reliable);
    free(buffer);
}
