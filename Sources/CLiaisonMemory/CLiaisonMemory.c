// The shim is header-only (include/CLiaisonMemory.h); a C target needs one source file.
#include "CLiaisonMemory.h"
