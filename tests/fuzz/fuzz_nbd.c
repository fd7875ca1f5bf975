/* libFuzzer target: the NBD client's handshake and reply parsing. The input is what a server
 * sends, delivered in pieces of varying size; once the handshake is done the client has reads,
 * a write and a flush in flight. Nothing may crash or write outside a request's buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../net/nbd.h"

struct feed { const uint8_t *p; size_t n, at; unsigned step; };

static int f_send(void *ctx, const void *buf, uint32_t len)
{
	(void)ctx;
	(void)buf;
	return (int)(len > 700 ? 700 : len);
}

static int f_recv(void *ctx, void *buf, uint32_t len)
{
	struct feed *f = ctx;
	if (f->at == f->n)
		return f->step++ > 4 ? -E_GONE : 0;
	size_t k = 1 + (f->step++ * 7) % 97;
	if (k > len)
		k = len;
	if (k > f->n - f->at)
		k = f->n - f->at;
	memcpy(buf, f->p + f->at, k);
	f->at += k;
	return (int)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nbd_client c;
	struct feed fd = { data, size, 0, 0 };
	struct nbd_stream s = { &fd, f_send, f_recv };
	nbd_client_init(&c, "fuzz");
	struct nbd_req r[4];
	uint8_t *bufs[4] = { NULL };
	bool submitted = false;
	for (int i = 0; i < 100000; i++) {
		int rc = nbd_client_pump(&c, &s);
		if (rc < 0)
			break;
		if (c.state == NBD_READY && !submitted) {
			submitted = true;
			for (int k = 0; k < 4; k++) {
				uint32_t len = 512u << k;
				bufs[k] = malloc(len);
				memset(bufs[k], 0, len);
				r[k] = (struct nbd_req){ .type = k == 2 ? NBD_CMD_WRITE : k == 3 ? NBD_CMD_FLUSH : NBD_CMD_READ,
							 .off = 0, .len = k == 3 ? 0 : len, .buf = bufs[k] };
				nbd_client_submit(&c, &r[k]);
			}
		}
		if (fd.at == fd.n && fd.step > 6)
			break;
	}
	struct nbd_req *left[NBD_SLOTS];
	nbd_client_take_pending(&c, left, NBD_SLOTS);
	for (int k = 0; k < 4; k++)
		free(bufs[k]);
	return 0;
}
