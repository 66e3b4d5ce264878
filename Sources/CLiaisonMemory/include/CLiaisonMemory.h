// Hands the allocator's free memory back to the operating system (glibc's malloc_trim, which
// Swift's Glibc module does not expose). With another C library it does nothing.
#ifndef CLIAISON_MEMORY_H
#define CLIAISON_MEMORY_H

#if defined(__linux__)
#include <malloc.h>
#endif

// __GLIBC__ comes from the C library's own headers, so it is tested after including one.
#if defined(__GLIBC__)
static inline int liaison_return_free_memory(void) { return malloc_trim(0); }
#else
static inline int liaison_return_free_memory(void) { return 0; }
#endif

#endif
