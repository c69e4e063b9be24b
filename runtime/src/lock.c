/* Lockfiles (molt.lock) and loading by lockfile entry or manifest digest. */
#include "internal.h"
