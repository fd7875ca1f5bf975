/* The NBD client protocol (the NBD project's proto.md): the fixed newstyle handshake with
 * NBD_OPT_GO (NBD_OPT_EXPORT_NAME when a server lacks it), then simple replies to READ, WRITE
 * (FUA), FLUSH, TRIM and WRITE_ZEROES with several requests in flight. Pure: it runs over any
 * byte stream (TCP in the appliance, a pipe in tests) and never trusts what the server sends. */
#ifndef KERNEL_NET_NBD_H
#define KERNEL_NET_NBD_H

#include "../lib/port.h"
#include "../lib/errors.h"

#define NBD_SLOTS        16
#define NBD_DEFAULT_PORT 10809
#define NBD_EXPORT_MAX   255

enum { NBD_CMD_READ = 0, NBD_CMD_WRITE = 1, NBD_CMD_DISC = 2, NBD_CMD_FLUSH = 3, NBD_CMD_TRIM = 4,
       NBD_CMD_WRITE_ZEROES = 6 };
#define NBD_CMD_FLAG_FUA      0x1u
#define NBD_CMD_FLAG_NO_HOLE  0x2u    /* WRITE_ZEROES: write them, do not punch a hole */
/* Transmission flags the server gives with the export. */
#define NBD_FLAG_HAS_FLAGS    0x1u
#define NBD_FLAG_READ_ONLY    0x2u
#define NBD_FLAG_SEND_FLUSH   0x4u
#define NBD_FLAG_SEND_FUA     0x8u
#define NBD_FLAG_SEND_TRIM    0x20u
#define NBD_FLAG_SEND_WRITE_ZEROES 0x40u

struct nbd_stream {
	void *ctx;
	/* Takes up to len bytes; returns how many (0 when it is full) or a negative code. */
	int (*send)(void *ctx, const void *buf, uint32_t len);
	/* Gives up to len bytes; returns how many (0 when none yet) or a negative code. */
	int (*recv)(void *ctx, void *buf, uint32_t len);
};

struct nbd_req {
	/* Filled in by the caller. */
	uint16_t type, flags;
	uint64_t off;
	uint32_t len;
	void *buf;                    /* READ: filled; WRITE: sent; others: unused */
	void *priv;
	/* Filled in by the client. */
	bool done;
	int status;                   /* 0 or the server's error as a negative code */
	uint32_t server_errno;
};

enum nbd_state { NBD_HS_GREETING, NBD_HS_OPTREPLY, NBD_HS_EXPORTNAME, NBD_READY, NBD_FAILED };

struct nbd_client {
	enum nbd_state state;
	int error;
	char export_name[NBD_EXPORT_MAX + 1];
	uint64_t size;
	uint16_t tflags;
	bool no_zeroes, have_export;
	char server_msg[96];          /* text of an option error, for the log */
	/* Bytes waiting to go out during the handshake. */
	uint8_t out[24 + NBD_EXPORT_MAX + 8];
	uint32_t out_len, out_sent;
	/* Reception: a header being gathered, then optionally a payload. */
	uint8_t hdr[136];            /* NBD_OPT_EXPORT_NAME's answer is the longest: 134 */
	uint32_t hdr_need, hdr_got;
	uint32_t skip;                /* option-reply payload bytes still to read (and mostly drop) */
	uint8_t optbuf[64];
	uint32_t opt_type, opt_len, opt_got;
	/* Transmission. */
	struct nbd_req *slot[NBD_SLOTS];
	uint32_t slot_sent[NBD_SLOTS];    /* bytes of header+payload sent */
	uint32_t gen;                     /* handles carry a generation: no stale match */
	uint64_t handle[NBD_SLOTS];
	uint8_t sendq[NBD_SLOTS];         /* slots in sending order */
	uint32_t sq_head, sq_len;
	int rx_slot;                      /* slot whose READ data is arriving, or -1 */
	uint32_t rx_got;
	uint64_t bytes_read, bytes_written, requests, errors;
};

/* Starts the handshake for export `name` (<= 255 bytes). */
int nbd_client_init(struct nbd_client *c, const char *name);
/* Moves the conversation on: sends what it can, parses what has arrived. 0, or a negative code
 * once the connection is unusable (protocol violation, server refusal, stream error); in-flight
 * requests are then left as they are for the caller to re-issue or fail. */
int nbd_client_pump(struct nbd_client *c, const struct nbd_stream *s);
/* Queues a request (READY only): 0, -E_BUSY when every slot is taken, -E_UNSUPP when the server
 * does not offer the command or flag, -E_RDONLY for writes to a read-only export, -E_RANGE. */
int nbd_client_submit(struct nbd_client *c, struct nbd_req *r);
/* Detaches every request not yet answered (for a reconnect); returns how many were put in out. */
int nbd_client_take_pending(struct nbd_client *c, struct nbd_req **out, int max);
/* Maps an NBD error number to the shared list. */
int nbd_errno_to_err(uint32_t e);

#endif
