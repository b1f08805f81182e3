/*
 * Precondition asserts for the kernels, on in the debug build only.
 *
 * A kernel's header states its preconditions (sorted offsets, tiers in order, products
 * within bounds, no NULL column it reads); the Cython layer checks the ones a caller can
 * get wrong cheaply, and the book keeps the rest. In a build with CLEARING_DEBUG defined to
 * 1 (setup.py does so for CLEARING_DEBUG=1) KERNEL_ASSERT(cond) prints the condition with
 * its file and line and aborts when cond is false: a broken precondition is a programmer
 * error, not a result. In the release build it compiles to nothing: the condition is only
 * type-checked (inside sizeof, never evaluated), and checks that need a loop are written
 * `if (KERNEL_DEBUG) { ... }`, which the compiler removes.
 *
 * Expected failures (an overflowing account, an unknown policy) are not asserts: kernels
 * return them as values, in both builds.
 */
#ifndef CLEARING_KERNEL_ASSERT_H
#define CLEARING_KERNEL_ASSERT_H

#include <stddef.h> /* NULL, for the conditions */

#if defined(CLEARING_DEBUG) && CLEARING_DEBUG
#include <stdio.h>
#include <stdlib.h>

#define KERNEL_DEBUG 1

static void kernel_assert_failed(const char *cond, const char *file, int line) {
    fprintf(stderr, "%s:%d: kernel precondition failed: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}

#define KERNEL_ASSERT(cond) \
    ((cond) ? (void)0 : kernel_assert_failed(#cond, __FILE__, __LINE__))
#else
#define KERNEL_DEBUG 0
#define KERNEL_ASSERT(cond) ((void)sizeof((cond) ? 1 : 0))
#endif

#endif
