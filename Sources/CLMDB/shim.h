#ifndef LOGLINE_CLMDB_SHIM_H
#define LOGLINE_CLMDB_SHIM_H
#include <lmdb.h>
#endif
