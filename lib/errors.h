/* The one list of error codes shared by the appliance, cow/ and the host tools.
 * Functions return 0 or a negative code (-E_IO); err_str() gives the message. */
#ifndef COW_ERRORS_H
#define COW_ERRORS_H

#define COW_ERROR_LIST(X)                                               \
	X(E_INVAL,    "invalid argument")                               \
	X(E_USAGE,    "bad usage")                                      \
	X(E_NOMEM,    "out of memory")                                  \
	X(E_IO,       "I/O error")                                      \
	X(E_MEDIUM,   "media error (unreadable sector)")                \
	X(E_TIMEOUT,  "command timed out")                              \
	X(E_GONE,     "device is gone")                                 \
	X(E_STALE,    "request belongs to an earlier device instance")  \
	X(E_UNSUPP,   "operation not supported by the device")          \
	X(E_RDONLY,   "device is read-only")                            \
	X(E_RANGE,    "beyond the end of the device")                   \
	X(E_ALIGN,    "not aligned to the sector size")                 \
	X(E_BUSY,     "busy")                                           \
	X(E_NOENT,    "no such object")                                 \
	X(E_EXIST,    "already exists")                                 \
	X(E_AGAIN,    "try again")                                      \
	X(E_INTR,     "interrupted")                                    \
	X(E_CORRUPT,  "corrupt metadata")                               \
	X(E_CRC,      "checksum mismatch")                              \
	X(E_VERSION,  "unknown format version")                         \
	X(E_FOREIGN,  "not a cow partition")                            \
	X(E_IDENTITY, "source identity differs")                        \
	X(E_TOOSMALL, "cow device is too small for the source")         \
	X(E_NOSPC,    "no space left")                                  \
	X(E_SYNTAX,   "syntax error")                                   \
	X(E_TARGET,   "clone target failed")                            \
	X(E_DEVICE,   "device error")                                   \
	X(E_COWIO,    "writing the cow device failed")                  \
	X(E_STOPPED,  "stopped")                                        \
	X(E_RESET,    "connection reset by the peer")                   \
	X(E_UNREACH,  "host unreachable")

enum cow_error {
	E_NONE = 0,
#define COW_ERR_ENUM(name, msg) name,
	COW_ERROR_LIST(COW_ERR_ENUM)
#undef COW_ERR_ENUM
	E__COUNT
};

/* Accepts either sign, so callers may pass a return value straight through. */
const char *err_str(int err);
/* The identifier ("E_IO") for logs and tests. */
const char *err_name(int err);

#endif
