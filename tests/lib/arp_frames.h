/* ARP frames for the NIC drivers' host tests: a peer's request to put on a fake device's
 * receive ring, and the check that what the driver sent back is our stack's reply to it. */
#ifndef TESTS_LIB_ARP_FRAMES_H
#define TESTS_LIB_ARP_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include "../../net/net.h"

#define ARP_FRAME_BYTES 60   /* a minimum Ethernet frame, padding included */

/* "Who has our_ip, tell peer_ip", broadcast from peer_mac. */
static inline void arp_request_frame(uint8_t f[ARP_FRAME_BYTES], const uint8_t peer_mac[6], uint32_t peer_ip,
				     uint32_t our_ip)
{
	memset(f, 0, ARP_FRAME_BYTES);
	memset(f, 0xff, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, 0x0806);
	put16(f + 14, 1);        /* Ethernet */
	put16(f + 16, 0x0800);   /* IPv4 */
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, 1);        /* request */
	memcpy(f + 22, peer_mac, 6);
	put32(f + 28, peer_ip);
	put32(f + 38, our_ip);
}

/* The reply "our_ip is at ..." sent to peer_mac, from our_mac when it is given. */
static inline bool arp_is_reply(const uint8_t *f, size_t len, const uint8_t peer_mac[6], const uint8_t *our_mac,
				uint32_t our_ip, uint32_t peer_ip)
{
	return len >= 42 && !memcmp(f, peer_mac, 6) && (!our_mac || !memcmp(f + 6, our_mac, 6)) &&
	       get16(f + 12) == 0x0806 && get16(f + 20) == 2 && get32(f + 28) == our_ip && get32(f + 38) == peer_ip;
}

#endif
