#include "base/error.h"

#include <string.h>

const char *err_str(int err)
{
    switch (err) {
    case 0:
        return "success";
    case ERR_INCOMPLETE:
        return "input incomplete";
    case ERR_CORRUPT:
        return "data corrupt";
    case ERR_TOO_LARGE:
        return "size over limit";
    case ERR_INVALID:
        return "invalid argument";
    case ERR_UNSUPPORTED:
        return "unsupported";
    case ERR_NOT_FOUND:
        return "not found";
    case ERR_RANGE:
        return "out of range";
    case ERR_STATE:
        return "wrong state";
    case ERR_CLOSED:
        return "closed";
    case ERR_DAMAGED:
        return "stored data damaged";
    case ERR_TIMEOUT:
        return "timed out";
    case ERR_REPLICAS:
        return "too few replicas in sync";
    default:
        break;
    }
    /* errno values are small; Linux keeps them below 4096. */
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}
