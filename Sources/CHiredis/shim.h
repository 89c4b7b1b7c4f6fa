#ifndef LLM_GATEWAY_CHIREDIS_SHIM_H
#define LLM_GATEWAY_CHIREDIS_SHIM_H

// hiredis serves only as the RESP formatter (redisFormatCommandArgv) and reply parser (redisReader*);
// the network I/O is SwiftNIO's.
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#endif
