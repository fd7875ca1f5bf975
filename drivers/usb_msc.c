/* USB mass storage, Bulk-Only Transport: SCSI disks (several LUNs, 512/4096-byte sectors, READ/
 * WRITE 16 past 2 TiB) in the block layer as usb0, usb1..., one command at a time per device
 * with the CBW, data and CSW queued together; sense decoding; recovery by BOT reset, then port
 * reset and re-enumeration; unplug is the device-gone path and the same drive plugged in again
 * (INQUIRY, serials and capacity compared) takes its old name back. */
#include "usb.h"
#include "blk.h"
#include "../boot/bootinfo.h"
#include "../lib/ata_id.h"
#include "../lib/port.h"
#include "../kernel/console.h"
#include "../kernel/log.h"
#include "../kernel/mem.h"
#include "../kernel/task.h"
#include "../kernel/time.h"

#define MSC_PROBE_TIMEOUT_MS  5000   /* INQUIRY, READ CAPACITY, REQUEST SENSE, MODE SENSE */
#define MSC_READY_TIMEOUT_MS 10000   /* TEST UNIT READY until the medium is ready */
#define MSC_READY_INLINE_MS    200   /* ... waited at probe (unit attentions); then the USB task's work */
#define MSC_READY_RETRY_MS      50   /* between TEST UNIT READYs of a synchronous wait */
#define MSC_CSW_TIMEOUT_MS    2000   /* the status read again after a stalled data stage */
#define MSC_RESET_TIMEOUT_MS  2000   /* Bulk-Only Mass Storage Reset and each CLEAR_FEATURE */
#define MSC_SAT_TIMEOUT_MS    2000   /* ATA PASS-THROUGH IDENTIFY: a bridge without SAT may not answer */

#define MSC_MAX_LUNS 8
#define MSC_NAME_MAX 12          /* a disk's name, so that "p<NN>" still fits a partition's */
#define MSC_MAX_BYTES (256u * 1024)
#define CBW_SIG 0x43425355u
#define CSW_SIG 0x53425355u

enum { SCSI_TUR = 0x00, SCSI_REQUEST_SENSE = 0x03, SCSI_INQUIRY = 0x12, SCSI_MODE_SENSE6 = 0x1a,
       SCSI_READ_CAP10 = 0x25, SCSI_READ10 = 0x28, SCSI_WRITE10 = 0x2a, SCSI_SYNC_CACHE10 = 0x35,
       SCSI_READ16 = 0x88, SCSI_WRITE16 = 0x8a, SCSI_SAI16 = 0x9e };

/* What bot_finish says about a command. */
enum { BOT_OK = 0, BOT_CHECK = 1 };

struct msc;

/* Bulk-Only or UAS: how a command goes to the device and its status comes back. */
struct msc_xport {
	const char *name;
	int (*issue)(struct msc *m, uint8_t lun, const uint8_t *cdb, uint8_t cdblen, bool in, void *buf,
		     uint32_t len);
	bool (*done)(struct msc *m);     /* polls; true when the command is over */
	int (*finish)(struct msc *m);    /* BOT_OK, BOT_CHECK (sense in m->sense), or an error */
	int (*reset)(struct msc *m);
};

struct msc_lun {
	struct blk_dev dev;
	struct msc *m;                 /* NULL while unplugged */
	uint8_t lun;
	struct scsi_inquiry inq;
	char usb_serial[48];
	uint16_t vid, pid;
	struct blk_req *pending;       /* accepted, waiting for the device (another LUN's command runs) */
	char ata_model[41], ata_serial[21], ata_fw[9];   /* the drive behind a SAT bridge, "" if none */
	bool ua_retried;
	struct xhci *hc;               /* where it was last plugged: twins return to their own ports */
	char path[24];
};

struct msc {
	struct usb_dev *ud;
	const struct msc_xport *x;
	uint8_t ep_in, ep_out, iface, nluns;
	uint8_t ep_cmd, ep_stat;        /* UAS: command and status pipes (ep_in/ep_out: data) */
	uint8_t uas_state;
	uint16_t sense_len;             /* UAS: sense data that came in the Sense IU */
	struct msc_lun *lun[MSC_MAX_LUNS];
	uint32_t tag;
	/* The one command in flight. */
	bool busy, has_data, csw_queued, streams;
	/* The USB task runs a sequence of commands on it (probe, a LUN becoming ready): the block
	 * layer's requests wait, recovery and SMART keep off. */
	bool held;
	uint32_t data_len;
	struct blk_req *cur;
	struct msc_lun *cur_lun;
	struct usb_xfer x_cbw, x_data, x_csw;
	uint8_t *cbw, *csw, *sense, *scratch;   /* DMA: 32, 128, 256 bytes and a 4 KiB page */
	uint8_t cdb[16];
	unsigned next_lun;             /* round robin over pending LUNs */
	/* LUNs not ready at probe (a drive spinning up), asked again by msc_work on the USB task. */
	deadline_t ready_by[MSC_MAX_LUNS];   /* 0: not waiting */
	struct scsi_inquiry wait_inq[MSC_MAX_LUNS];
};

static struct msc_lun *all_luns[32];
static unsigned nluns_all, next_name;   /* next_name: names of paths too long to spell */
static const struct blk_driver_ops msc_ops;

static void put_be32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }
static void put_be64(uint8_t *p, uint64_t v) { put_be32(p, (uint32_t)(v >> 32)); put_be32(p + 4, (uint32_t)v); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Queues CBW, data and CSW at once: the endpoints take them in order. */
static int bot_issue(struct msc *m, uint8_t lun, const uint8_t *cdb, uint8_t cdblen, bool in, void *buf,
		     uint32_t len)
{
	uint8_t *c = m->cbw;
	memset(c, 0, 31);
	c[0] = 0x55; c[1] = 0x53; c[2] = 0x42; c[3] = 0x43;   /* "USBC" */
	m->tag++;
	memcpy(c + 4, &m->tag, 4);
	c[8] = (uint8_t)len; c[9] = (uint8_t)(len >> 8); c[10] = (uint8_t)(len >> 16); c[11] = (uint8_t)(len >> 24);
	c[12] = in ? 0x80 : 0;
	c[13] = lun;
	c[14] = cdblen;
	memcpy(c + 15, cdb, cdblen);
	memcpy(m->cdb, cdb, cdblen);
	m->x_cbw = (struct usb_xfer){ .dev = m->ud, .ep = m->ep_out, .buf = c, .len = 31 };
	m->x_data = (struct usb_xfer){ .dev = m->ud, .ep = in ? m->ep_in : m->ep_out, .buf = buf, .len = len };
	m->x_csw = (struct usb_xfer){ .dev = m->ud, .ep = m->ep_in, .buf = m->csw, .len = 13 };
	memset(m->csw, 0, 13);
	m->has_data = len != 0;
	m->data_len = len;
	m->csw_queued = false;
	int rc = usb_hc_submit(&m->x_cbw);
	if (rc == 0 && len)
		rc = usb_hc_submit(&m->x_data);
	m->busy = rc == 0;
	return rc;
}

/* Polls the controller; queues the CSW read once the data stage is through (QEMU's usb-storage
 * does not finish a status read queued behind data it completes asynchronously). */
static bool bot_done(struct msc *m)
{
	usb_hc_poll(m->ud->hc);
	if (m->x_cbw.done && m->x_cbw.status < 0)
		return true;
	if (m->has_data && m->x_data.done && m->x_data.status < 0)
		return true;
	if (!m->csw_queued && m->x_cbw.done && (!m->has_data || m->x_data.done)) {
		m->csw_queued = true;
		if (usb_hc_submit(&m->x_csw) < 0) {
			m->x_csw.done = true;
			m->x_csw.status = -E_GONE;
		}
		usb_hc_poll(m->ud->hc);
	}
	return m->csw_queued && m->x_csw.done;
}

/* Bulk-Only Mass Storage Reset, then both halts cleared (the spec's reset recovery). */
static int bot_reset(struct msc *m)
{
	usb_hc_cancel(m->ud, m->ep_in);
	usb_hc_cancel(m->ud, m->ep_out);
	m->busy = false;
	int rc = usb_control(m->ud, USB_TYPE_CLASS | USB_RECIP_IFACE, 0xff, 0, m->iface, NULL, 0,
			     MSC_RESET_TIMEOUT_MS);
	if (rc >= 0)
		rc = usb_clear_halt(m->ud, m->ep_in);
	if (rc >= 0)
		rc = usb_clear_halt(m->ud, m->ep_out);
	return rc < 0 ? rc : 0;
}

/* The outcome of a finished command: BOT_OK, BOT_CHECK (sense to read), or a negative error
 * after which the device was reset (wrong or missing CSW, phase error, a failed transfer). */
static int bot_finish(struct msc *m)
{
	m->busy = false;
	const char *why = NULL;
	if (m->x_cbw.done && m->x_cbw.status < 0) {
		why = "command transport failed";
	} else if (m->has_data && m->x_data.status == -E_AGAIN) {
		/* A stalled data stage: clear it, then the CSW is still to come. */
		uint8_t ep = m->x_data.ep;
		if (usb_clear_halt(m->ud, ep) < 0) {
			why = "halt not cleared";
		} else {
			m->x_csw = (struct usb_xfer){ .dev = m->ud, .ep = m->ep_in, .buf = m->csw, .len = 13 };
			if (usb_hc_submit(&m->x_csw) < 0)
				why = "CSW not queued";
			else if (usb_xfer_wait(&m->x_csw, MSC_CSW_TIMEOUT_MS) < 0)
				why = "no CSW after a data stall";
		}
	} else if (m->has_data && m->x_data.done && m->x_data.status < 0) {
		why = "data transfer failed";
	}
	if (!why && m->x_csw.status == -E_AGAIN) {   /* CSW stalled: clear and read it once more */
		m->x_csw = (struct usb_xfer){ .dev = m->ud, .ep = m->ep_in, .buf = m->csw, .len = 13 };
		if (usb_clear_halt(m->ud, m->ep_in) < 0 || usb_hc_submit(&m->x_csw) < 0 ||
		    usb_xfer_wait(&m->x_csw, MSC_CSW_TIMEOUT_MS) < 0)
			why = "CSW stalled twice";
	}
	uint32_t tag;
	memcpy(&tag, m->csw + 4, 4);
	if (!why && (m->x_csw.status < 0 || m->x_csw.actual != 13 || le32(m->csw) != CSW_SIG || tag != m->tag))
		why = "invalid CSW";
	if (!why && m->csw[12] > 1)
		why = "phase error";
	if (!why && m->csw[12] == 0 && m->has_data && m->x_data.actual < m->data_len && m->cdb[0] != SCSI_INQUIRY &&
	    m->cdb[0] != SCSI_REQUEST_SENSE && m->cdb[0] != SCSI_MODE_SENSE6)
		why = "short data with good status";
	if (why) {
		log_event(LOG_WARN, "usb: port %s: SCSI 0x%02x: %s; BOT reset", m->ud->path, m->cdb[0], why);
		return bot_reset(m) < 0 ? -E_GONE : -E_IO;
	}
	return m->csw[12] ? BOT_CHECK : BOT_OK;
}

static const struct msc_xport bot_xport = { "BOT", bot_issue, bot_done, bot_finish, bot_reset };

/* ---- UAS (USB Attached SCSI). Without streams (USB2): command IU on the command pipe; the
 * status pipe answers READ READY / WRITE READY before the data stage, then the Sense IU. With
 * streams (USB3): status and data are queued on the tag's stream before the command IU. One tag,
 * one command at a time, as with BOT. ---- */
enum { UAS_CMD_IU = 0x01, UAS_SENSE_IU = 0x03, UAS_RESPONSE_IU = 0x04, UAS_READ_READY = 0x06,
       UAS_WRITE_READY = 0x07 };
enum { UAS_WAIT_READY, UAS_WAIT_DATA, UAS_WAIT_SENSE, UAS_OVER };
#define UAS_TAG 1

static void uas_read_status(struct msc *m)
{
	memset(m->csw, 0, 128);
	m->x_csw = (struct usb_xfer){ .dev = m->ud, .ep = m->ep_stat, .buf = m->csw, .len = 96,
				      .stream = m->streams ? UAS_TAG : 0 };
	if (usb_hc_submit(&m->x_csw) < 0) {
		m->x_csw.done = true;
		m->x_csw.status = -E_GONE;
	}
}

static int uas_issue(struct msc *m, uint8_t lun, const uint8_t *cdb, uint8_t cdblen, bool in, void *buf,
		     uint32_t len)
{
	uint8_t *c = m->cbw;
	memset(c, 0, 32);
	c[0] = UAS_CMD_IU;
	c[3] = UAS_TAG;
	c[9] = lun;   /* single-level LUN, peripheral addressing */
	memcpy(c + 16, cdb, cdblen);
	memcpy(m->cdb, cdb, cdblen);
	m->x_cbw = (struct usb_xfer){ .dev = m->ud, .ep = m->ep_cmd, .buf = c, .len = 32 };
	m->x_data = (struct usb_xfer){ .dev = m->ud, .ep = in ? m->ep_in : m->ep_out, .buf = buf, .len = len,
				       .stream = m->streams ? UAS_TAG : 0 };
	m->has_data = len != 0;
	m->data_len = len;
	m->sense_len = 0;
	m->uas_state = UAS_WAIT_READY;
	int rc = 0;
	if (m->streams) {   /* the device answers on the tag's streams: be listening first */
		m->uas_state = UAS_WAIT_SENSE;
		uas_read_status(m);
		rc = m->x_csw.status;
		if (rc == 0 && len)
			rc = usb_hc_submit(&m->x_data);
		if (rc == 0)
			rc = usb_hc_submit(&m->x_cbw);
	} else {
		rc = usb_hc_submit(&m->x_cbw);
		if (rc == 0)
			uas_read_status(m);
	}
	m->busy = rc == 0;
	return rc;
}

static bool uas_done(struct msc *m)
{
	usb_hc_poll(m->ud->hc);
	if ((m->x_cbw.done && m->x_cbw.status < 0) || (m->x_data.done && m->x_data.status < 0))
		return true;
	if (m->uas_state == UAS_WAIT_DATA) {
		if (!m->x_data.done)
			return false;
		m->uas_state = UAS_WAIT_SENSE;
		uas_read_status(m);
		return false;
	}
	if (!m->x_csw.done)
		return false;
	/* With streams the data stage runs beside the status: a good status waits for it. */
	if (m->streams && m->has_data && !m->x_data.done && m->x_csw.status == 0 && m->csw[0] == UAS_SENSE_IU &&
	    m->csw[6] == 0)
		return false;
	if (m->x_csw.status == 0 && m->uas_state == UAS_WAIT_READY && m->x_csw.actual >= 4 && m->has_data &&
	    (m->csw[0] == UAS_READ_READY || m->csw[0] == UAS_WRITE_READY) && m->csw[3] == UAS_TAG) {
		m->uas_state = UAS_WAIT_DATA;
		if (usb_hc_submit(&m->x_data) < 0) {
			m->x_data.done = true;
			m->x_data.status = -E_GONE;
		}
		return false;
	}
	m->uas_state = UAS_OVER;
	return true;
}

static int uas_reset(struct msc *m)
{
	m->busy = false;
	int rc = 0;
	uint8_t eps[4] = { m->ep_cmd, m->ep_stat, m->ep_in, m->ep_out };
	for (int i = 0; i < 4; i++) {
		usb_hc_cancel(m->ud, eps[i]);
		if (rc == 0)
			rc = usb_clear_halt(m->ud, eps[i]);
	}
	return rc < 0 ? rc : 0;
}

static int uas_finish(struct msc *m)
{
	m->busy = false;
	const uint8_t *s = m->csw;
	const char *why = NULL;
	if (m->x_cbw.status < 0 || m->x_data.status < 0 || m->x_csw.status < 0)
		why = "transfer failed";
	else if (m->x_csw.actual < 16 || s[0] != UAS_SENSE_IU || s[2] != 0 || s[3] != UAS_TAG)
		why = s[0] == UAS_RESPONSE_IU ? "task management response" : "invalid status IU";
	else if (s[6] != 0 && s[6] != 2)
		why = "unexpected SCSI status";
	if (why) {
		log_event(LOG_WARN, "usb: port %s: SCSI 0x%02x: %s; UAS reset", m->ud->path, m->cdb[0], why);
		return uas_reset(m) < 0 ? -E_GONE : -E_IO;
	}
	if (s[6] == 0)
		return BOT_OK;
	uint32_t n = (uint32_t)s[14] << 8 | s[15];
	if (n > m->x_csw.actual - 16)
		n = m->x_csw.actual - 16;
	memcpy(m->sense, s + 16, n);
	m->sense_len = (uint16_t)n;
	return BOT_CHECK;
}

static const struct msc_xport uas_xport = { "UAS", uas_issue, uas_done, uas_finish, uas_reset };

static bool command_over(void *ctx)
{
	struct msc *m = ctx;
	return m->x->done(m);
}

/* One command start to end, polling (probe, recovery, sense). */
static int bot_sync(struct msc *m, uint8_t lun, const uint8_t *cdb, uint8_t cdblen, bool in, void *buf,
		    uint32_t len, uint32_t timeout_ms)
{
	int rc = m->x->issue(m, lun, cdb, cdblen, in, buf, len);
	if (rc < 0)
		return rc;
	if (usb_wait(command_over, m, timeout_ms) < 0) {
		log_event(LOG_WARN, "usb: port %s: SCSI 0x%02x: no answer in %u ms; %s reset", m->ud->path, cdb[0],
			  timeout_ms, m->x->name);
		m->x->reset(m);
		return -E_TIMEOUT;
	}
	return m->x->finish(m);
}

static int request_sense(struct msc *m, uint8_t lun, struct scsi_sense *s)
{
	if (m->x != &bot_xport)   /* UAS: the Sense IU carried it */
		return scsi_parse_sense(m->sense, m->sense_len, s);
	uint8_t cdb[6] = { SCSI_REQUEST_SENSE, 0, 0, 0, 252, 0 };
	memset(m->sense, 0, 252);
	int rc = bot_sync(m, lun, cdb, 6, true, m->sense, 252, MSC_PROBE_TIMEOUT_MS);
	if (rc != BOT_OK)
		return rc < 0 ? rc : -E_IO;
	return scsi_parse_sense(m->sense, m->x_data.actual, s);
}

/* A command that may end in CHECK CONDITION: the sense says what it means. */
static int scsi_sync(struct msc *m, uint8_t lun, const uint8_t *cdb, uint8_t cdblen, void *buf, uint32_t len,
		     struct scsi_sense *sense)
{
	int rc = bot_sync(m, lun, cdb, cdblen, true, buf, len, MSC_PROBE_TIMEOUT_MS);
	memset(sense, 0, sizeof(*sense));
	if (rc != BOT_CHECK)
		return rc;
	rc = request_sense(m, lun, sense);
	return rc < 0 ? rc : -E_IO;
}

/* The block layer's error for a sense: medium errors with the LBA the device names when it lies
 * in the command, else its first. */
static int sense_error(const struct scsi_sense *s, const struct blk_req *r, uint64_t *lba)
{
	*lba = BLK_NO_LBA;
	switch (s->key) {
	case 0x1:   /* recovered error: the data is good */
		return 0;
	case 0x3:   /* medium error */
	case 0x4:   /* hardware error: an unrecovered read is reported so by some bridges */
		if (r->op == BLK_READ && (s->key == 3 || s->asc == 0x11)) {
			*lba = s->info_valid && s->info >= r->lba && s->info - r->lba < r->count ? s->info : r->lba;
			return -E_MEDIUM;
		}
		return -E_IO;
	case 0x5:
		return -E_UNSUPP;
	case 0x7:
		return -E_RDONLY;
	case 0x2:
		return s->asc == 0x3a ? -E_GONE : -E_AGAIN;   /* medium not present / not ready */
	default:
		return -E_IO;
	}
}

/* ---- the block device -------------------------------------------------------------------- */

static void start_cmd(struct msc *m, struct msc_lun *l, struct blk_req *r)
{
	uint8_t cdb[16] = { 0 }, n;
	struct blk_dev *d = &l->dev;
	if (r->op == BLK_FLUSH) {
		cdb[0] = SCSI_SYNC_CACHE10;
		n = 10;
	} else if (r->lba + r->count <= 0xffffffffull && r->count <= 0xffff) {
		cdb[0] = r->op == BLK_READ ? SCSI_READ10 : SCSI_WRITE10;
		put_be32(cdb + 2, (uint32_t)r->lba);
		cdb[7] = (uint8_t)(r->count >> 8);
		cdb[8] = (uint8_t)r->count;
		n = 10;
	} else {
		cdb[0] = r->op == BLK_READ ? SCSI_READ16 : SCSI_WRITE16;
		put_be64(cdb + 2, r->lba);
		put_be32(cdb + 10, r->count);
		n = 16;
	}
	if (r->op == BLK_WRITE && (r->flags & BLK_REQ_FUA))
		cdb[1] |= 0x08;
	m->cur = r;
	m->cur_lun = l;
	uint32_t len = r->op == BLK_FLUSH ? 0 : r->count * d->lsize;
	if (m->x->issue(m, l->lun, cdb, n, r->op == BLK_READ, r->buf, len) < 0) {
		m->cur = NULL;
		blk_complete(d, r, -E_GONE, BLK_NO_LBA);
	}
}

/* Starts the next accepted command of any LUN when the device is free. */
static void next_cmd(struct msc *m)
{
	for (unsigned k = 0; k < m->nluns && !m->busy && !m->held; k++) {
		struct msc_lun *l = m->lun[(m->next_lun + k) % m->nluns];
		if (l && l->pending) {
			struct blk_req *r = l->pending;
			l->pending = NULL;
			m->next_lun = (m->next_lun + k + 1) % m->nluns;
			start_cmd(m, l, r);
		}
	}
}

static int msc_start(struct blk_dev *d, struct blk_req *r)
{
	struct msc_lun *l = d->drv;
	struct msc *m = l->m;
	if (!m)
		return -E_GONE;
	if (l->pending || (m->busy && m->cur_lun == l))
		return -E_BUSY;
	l->pending = r;
	l->ua_retried = false;
	next_cmd(m);
	return 0;
}

static void msc_poll(struct blk_dev *d)
{
	struct msc_lun *l = d->drv;
	struct msc *m = l->m;
	if (!m || m->held)
		return;   /* held: the command in flight is the USB task's */
	if (!m->busy || !m->x->done(m)) {
		next_cmd(m);
		return;
	}
	struct blk_req *r = m->cur;
	struct msc_lun *cl = m->cur_lun;
	m->cur = NULL;
	int rc = m->x->finish(m);
	uint64_t lba = BLK_NO_LBA;
	if (rc == BOT_CHECK && r) {
		struct scsi_sense s;
		int src = request_sense(m, cl->lun, &s);
		if (src < 0) {
			rc = src == -E_GONE ? -E_GONE : -E_IO;
		} else {
			rc = sense_error(&s, r, &lba);
			log_event(LOG_DEBUG, "%s: LBA %llu: sense %x/%02x/%02x%s", cl->dev.name,
				  (unsigned long long)r->lba, s.key, s.asc, s.ascq, s.info_valid ? " (LBA given)" : "");
			if (s.key == 0x6 && !cl->ua_retried) {   /* unit attention (after a reset): once more */
				cl->ua_retried = true;
				start_cmd(m, cl, r);
				return;
			}
			if (rc == -E_AGAIN)
				rc = -E_IO;
		}
	}
	if (r)
		blk_complete(&cl->dev, r, rc, lba);
	if (m->ud)
		next_cmd(m);
}

static int read_capacity(struct msc *m, uint8_t lun, uint64_t *sectors, uint32_t *lsize, uint32_t *psize)
{
	struct scsi_sense s;
	uint8_t cdb[16] = { SCSI_READ_CAP10 };
	int rc = scsi_sync(m, lun, cdb, 10, m->scratch, 8, &s);
	if (rc < 0)
		return rc;
	if (scsi_parse_capacity10(m->scratch, m->x_data.actual, sectors, lsize) < 0)
		return -E_CORRUPT;
	*psize = *lsize;
	if (*sectors <= 0xffffffffull)
		return 0;
	uint8_t cdb16[16] = { SCSI_SAI16, 0x10 };
	put_be32(cdb16 + 10, 32);
	rc = scsi_sync(m, lun, cdb16, 16, m->scratch, 32, &s);
	if (rc < 0)
		return rc;
	return scsi_parse_capacity16(m->scratch, m->x_data.actual, sectors, lsize, psize);
}

/* One TEST UNIT READY: 0 ready, -E_AGAIN not yet (becoming ready, a unit attention; any other
 * sense too: QEMU's usb-bot answers its second LUN's first one with "LUN not supported"), else
 * the error (medium not present, no sense, a transport failure). */
static int tur_once(struct msc *m, uint8_t lun)
{
	uint8_t cdb[6] = { SCSI_TUR };
	struct scsi_sense s;
	int rc = scsi_sync(m, lun, cdb, 6, NULL, 0, &s);
	if (rc == -E_IO && s.key != 0 && !(s.key == 2 && s.asc == 0x3a))
		return -E_AGAIN;
	return rc;
}

struct tur_wait { struct msc *m; uint8_t lun; int rc; };

static bool tur_settled(void *ctx)
{
	struct tur_wait *w = ctx;
	w->rc = tur_once(w->m, w->lun);
	if (w->rc != -E_AGAIN)
		return true;
	usb_sleep_ms(MSC_READY_RETRY_MS);
	return false;
}

/* TEST UNIT READY until ready: 0, -E_AGAIN when still becoming ready at the deadline, else the
 * error (-E_TIMEOUT: a TEST UNIT READY itself went unanswered, the transport was reset). */
static int wait_ready(struct msc *m, uint8_t lun, uint32_t timeout_ms)
{
	struct tur_wait w = { m, lun, -E_AGAIN };
	usb_wait(tur_settled, &w, timeout_ms);   /* its verdict is w.rc's */
	return w.rc;
}

static int inquiry(struct msc *m, uint8_t lun, struct scsi_inquiry *inq)
{
	struct scsi_sense s;
	uint8_t cdb[6] = { SCSI_INQUIRY, 0, 0, 0, 36, 0 };
	memset(m->scratch, 0, 36);
	int rc = scsi_sync(m, lun, cdb, 6, m->scratch, 36, &s);
	return rc < 0 ? rc : scsi_parse_inquiry(m->scratch, m->x_data.actual, inq);
}

/* The unit serial number (VPD page 80h), "" when the device has none. */
static void unit_serial(struct msc *m, uint8_t lun, char *out, size_t outlen)
{
	struct scsi_sense s;
	uint8_t cdb[6] = { SCSI_INQUIRY, 1, 0x80, 0, 252, 0 };
	out[0] = '\0';
	memset(m->scratch, 0, 256);
	if (scsi_sync(m, lun, cdb, 6, m->scratch, 252, &s) < 0 || m->x_data.actual < 4 || m->scratch[1] != 0x80)
		return;
	size_t n = m->scratch[3], k = 0;
	if (n > m->x_data.actual - 4)
		n = m->x_data.actual - 4;
	for (size_t i = 0; i < n && k + 1 < outlen; i++) {
		uint8_t c = m->scratch[4 + i];
		if (c > 0x20 && c < 0x7f)
			out[k++] = (char)c;
	}
	out[k] = '\0';
}

/* The drive's own identity through SAT: ATA PASS-THROUGH (16), PIO data-in, IDENTIFY DEVICE.
 * Bridges without SAT refuse it (or fail to answer: then a BOT reset, once, at probe). */
static void sat_identify(struct msc *m, struct msc_lun *l)
{
	uint8_t cdb[16] = { 0x85, 4 << 1, 0x0e };   /* PIO data-in; length in sectors, from the device */
	cdb[6] = 1;
	cdb[14] = 0xec;
	memset(m->scratch, 0, 512);
	int rc = bot_sync(m, l->lun, cdb, 16, true, m->scratch, 512, MSC_SAT_TIMEOUT_MS);
	if (rc == BOT_CHECK) {
		struct scsi_sense s;
		request_sense(m, l->lun, &s);   /* clears the condition; the answer is "no" either way */
		return;
	}
	if (rc == BOT_OK && m->x_data.actual >= 512 &&
	    ata_identify_strings(m->scratch, 512, l->ata_model, l->ata_serial, l->ata_fw) == 0)
		log_event(LOG_INFO, "%s: SAT bridge: drive '%s' serial '%s' firmware '%s'", l->dev.name,
			  l->ata_model, l->ata_serial, l->ata_fw);
}

/* SMART RETURN STATUS through SAT (non-data, CK_COND: the registers come back in the sense
 * data): 1 healthy, 0 a threshold exceeded, negative when the bridge cannot say. */
static int sat_smart_status(struct msc *m, struct msc_lun *l, uint32_t timeout_ms)
{
	uint8_t cdb[16] = { 0x85, 3 << 1, 0x20 };   /* non-data, CK_COND */
	cdb[4] = 0xda;    /* features: RETURN STATUS */
	cdb[10] = 0x4f;   /* LBA mid */
	cdb[12] = 0xc2;   /* LBA high */
	cdb[14] = 0xb0;   /* SMART */
	int rc = bot_sync(m, l->lun, cdb, 16, true, NULL, 0, timeout_ms);
	if (rc != BOT_CHECK)
		return rc < 0 ? rc : -E_UNSUPP;
	struct scsi_sense s;
	if (request_sense(m, l->lun, &s) < 0 || !s.ata_valid || (s.ata_status & 0x01))
		return -E_UNSUPP;
	if (s.ata_lba_mid == 0x4f && s.ata_lba_high == 0xc2)
		return 1;
	return s.ata_lba_mid == 0xf4 && s.ata_lba_high == 0x2c ? 0 : -E_UNSUPP;
}

static bool write_protected(struct msc *m, uint8_t lun)
{
	struct scsi_sense s;
	uint8_t cdb[6] = { SCSI_MODE_SENSE6, 0, 0x3f, 0, 192, 0 };
	return scsi_sync(m, lun, cdb, 6, m->scratch, 192, &s) == 0 && m->x_data.actual >= 4 &&
	       (m->scratch[2] & 0x80);
}

/* Identity of a LUN as it answers now against what a disk had. */
static bool same_lun(struct msc *m, uint8_t lun, const struct msc_lun *l)
{
	struct scsi_inquiry inq;
	uint64_t sectors;
	uint32_t ls, ps;
	char serial[32];
	if (wait_ready(m, lun, MSC_READY_TIMEOUT_MS) < 0 || inquiry(m, lun, &inq) < 0 || read_capacity(m, lun, &sectors, &ls, &ps) < 0)
		return false;
	unit_serial(m, lun, serial, sizeof(serial));
	return !strcmp(inq.vendor, l->inq.vendor) && !strcmp(inq.product, l->inq.product) &&
	       sectors == l->dev.sectors && ls == l->dev.lsize && !strcmp(m->ud->serial, l->usb_serial) &&
	       (serial[0] ? !strcmp(serial, l->dev.serial) : !strcmp(l->dev.serial, l->usb_serial));
}

static int msc_recover(struct blk_dev *d, struct blk_req *overdue)
{
	struct msc_lun *l = d->drv;
	struct msc *m = l->m;
	if (!m)
		return -E_GONE;   /* unplugged: it returns when it is plugged in again */
	if (m->held)   /* the USB task's commands: the request waited behind them, nothing to reset */
		return overdue ? 0 : -E_BUSY;
	if (!overdue)
		return !m->busy && same_lun(m, l->lun, l) ? 0 : -E_GONE;
	/* Everything in flight on the device is abandoned: the layer re-issues this LUN's; other
	 * LUNs' accepted commands are started again after the reset. */
	m->cur = NULL;
	l->pending = NULL;
	log_event(LOG_WARN, "%s: %s reset recovery", d->name, m->x->name);
	if (m->x->reset(m) == 0 && same_lun(m, l->lun, l))
		return 0;
	log_event(LOG_WARN, "%s: port reset and re-enumeration", d->name);
	m->busy = false;
	if (usb_reset_device(m->ud) == 0 && same_lun(m, l->lun, l))
		return 0;
	log_event(LOG_ERR, "%s: no answer after the port reset", d->name);
	return -E_GONE;
}

/* SMART READ DATA through SAT: ATA PASS-THROUGH (16), PIO data-in, one 512-byte page, parsed
 * (checksum first) like a SATA drive's. -E_UNSUPP when the bridge refuses it. */
static int sat_smart_data(struct msc *m, struct msc_lun *l, struct ata_smart *out, uint32_t timeout_ms)
{
	uint8_t cdb[16] = { 0x85, 4 << 1, 0x0e };   /* PIO data-in; length in sectors, from the device */
	cdb[4] = 0xd0;    /* features: READ DATA */
	cdb[6] = 1;
	cdb[10] = 0x4f;   /* the SMART key in LBA mid/high */
	cdb[12] = 0xc2;
	cdb[14] = 0xb0;
	memset(m->scratch, 0, 512);
	int rc = bot_sync(m, l->lun, cdb, 16, true, m->scratch, 512, timeout_ms);
	if (rc == BOT_CHECK) {
		struct scsi_sense s;
		request_sense(m, l->lun, &s);
		return -E_UNSUPP;
	}
	if (rc < 0)
		return rc;
	return m->x_data.actual < 512 ? -E_CORRUPT : ata_smart_parse(m->scratch, out);
}

/* SMART through the bridge as the SATA driver words it: the verdict and the attributes a rescue
 * cares about as two lines (health, line), and for a person in h->words (h may be NULL), within
 * timeout_ms. -E_BUSY while the device runs a command, -E_GONE unplugged, -E_UNSUPP without SAT. */
static int smart_text(struct msc_lun *l, char *health, char *line, size_t n, struct blk_health *h,
		      uint32_t timeout_ms)
{
	struct msc *m = l->m;
	if (!l->ata_model[0])
		return -E_UNSUPP;
	if (!m)
		return -E_GONE;
	if (m->busy || m->held)
		return -E_BUSY;
	deadline_t end = deadline_in_ms(timeout_ms);
	int v = sat_smart_status(m, l, timeout_ms);   /* 1 healthy, 0 a threshold exceeded */
	if (v == -E_TIMEOUT || v == -E_GONE)
		return v;
	if (v < 0)
		fmt_snprintf(health, n, "SMART health: unknown (%s)", err_str(v));
	else
		fmt_snprintf(health, n, "SMART health: %s", v ? "ok" : "FAILING (threshold exceeded)");
	struct ata_smart data;
	uint32_t left = deadline_left_ms(end);
	int rc = left ? sat_smart_data(m, l, &data, left) : -E_TIMEOUT;
	if (rc < 0)
		fmt_snprintf(line, n, "SMART data: %s (%s)",
			     rc == -E_UNSUPP ? "not passed through by this bridge" : "unreadable", err_str(rc));
	else
		ata_smart_summary(&data, line, n);
	if (h)
		h->verdict = (enum blk_verdict)ata_smart_words(rc == 0 ? &data : NULL, v < 0 ? v : !v,
							       h->words, sizeof(h->words));
	return 0;
}

static void msc_info(struct blk_dev *d)
{
	struct msc_lun *l = d->drv;
	struct msc *m = l->m;
	kprintf("usb: %04x:%04x, USB serial '%s', LUN %u, SCSI '%s' '%s' rev '%s', %s\n",
		l->vid, l->pid, l->usb_serial, l->lun, l->inq.vendor, l->inq.product, l->inq.rev,
		!m ? "-" : m->x == &bot_xport ? "Bulk-Only Transport" : m->streams ? "UAS (streams)" : "UAS");
	if (l->ata_model[0]) {
		kprintf("drive (SAT ATA PASS-THROUGH IDENTIFY): '%s' serial '%s' firmware '%s'\n", l->ata_model,
			l->ata_serial, l->ata_fw);
		char health[160], line[160];
		int rc = smart_text(l, health, line, sizeof(line), NULL, MSC_SAT_TIMEOUT_MS);
		if (rc == 0)
			kprintf("%s\n%s\n", health, line);
		else
			kprintf("SMART: %s\n", rc == -E_BUSY ? "the device is busy, try again" : err_str(rc));
	}
	else
		kprintf("drive identity: not available through this bridge (no SAT ATA PASS-THROUGH)\n");
	if (m)
		kprintf("port %s on %s, %s speed, max transfer %u KiB\n", m->ud->path, xhci_name(m->ud->hc),
			usb_speed_name(m->ud->speed), MSC_MAX_BYTES / 1024);
	else
		kprintf("unplugged\n");
}

/* SMART through a SAT bridge, or why there is none, for the first screen, `info` and the report. */
static int msc_health(struct blk_dev *d, struct blk_health *h, uint32_t timeout_ms)
{
	struct msc_lun *l = d->drv;
	if (!l->m || (d->flags & BLK_F_GONE))
		return -E_GONE;
	if (!l->ata_model[0]) {
		h->verdict = BLK_HEALTH_UNKNOWN;
		fmt_snprintf(h->words, sizeof(h->words), "health: not available over this USB bridge");
		fmt_snprintf(h->detail, sizeof(h->detail), "health: not available over this USB bridge (no SAT ATA PASS-THROUGH)");
		return 0;
	}
	char health[160], line[160];
	int rc = smart_text(l, health, line, sizeof(line), h, timeout_ms);
	if (rc == 0)
		fmt_snprintf(h->detail, sizeof(h->detail), "%s; %s", health, line);
	return rc;
}

static const struct blk_driver_ops msc_ops = {
	.start = msc_start, .poll = msc_poll, .recover = msc_recover, .info = msc_info,
	.health = msc_health,
};

/* The firmware's device path named this USB port path and LUN. */
static bool is_boot_disk(struct usb_dev *ud, uint8_t lun)
{
	const struct boot_info *bi = boot_info_get();
	uint8_t bus, dev, fn;
	xhci_pci_addr(ud->hc, &bus, &dev, &fn);
	if (bi->boot_pci_bus != bus || bi->boot_pci_dev != dev || bi->boot_pci_fn != fn ||
	    bi->boot_usb_depth != ud->depth + 1u || bi->boot_usb_lun != lun)
		return false;
	for (const struct usb_dev *u = ud; u; u = u->parent)
		if (bi->boot_usb_port[u->depth] + 1u != u->port)   /* the firmware counts ports from 0 */
			return false;
	return true;
}

static bool name_taken(const char *name)
{
	for (unsigned i = 0; i < nluns_all; i++)
		if (!strcmp(all_luns[i]->dev.name, name))
			return true;
	return false;
}

/* A disk is named by where it is plugged: usb<controller>-<port path>, then l<LUN> after LUN 0
 * (usb0-1, usb0-6.2, usb0-3l1), so the same port gives the same name after a re-plug or a
 * reboot, whatever order the devices enumerate in. A name another disk still holds (a gone
 * one; a drive that came back on another port keeps its old name) gets _2, _3... A path too
 * long to spell (deep hubs) is numbered instead: usb<controller>-x<N>. */
static void lun_name(struct usb_dev *ud, uint8_t lun, char *out, size_t n)
{
	char base[40];
	int c = xhci_index(ud->hc);
	int len = lun ? fmt_snprintf(base, sizeof(base), "usb%d-%sl%u", c, ud->path, lun)
		      : fmt_snprintf(base, sizeof(base), "usb%d-%s", c, ud->path);
	if (len + 2 > MSC_NAME_MAX) {
		fmt_snprintf(base, sizeof(base), "usb%d-x%u", c, next_name++);
		log_event(LOG_WARN, "usb: port %s LUN %u: path too long for a disk name: %s", ud->path, lun, base);
	}
	fmt_snprintf(out, n, "%s", base);
	for (unsigned k = 2; name_taken(out) && k < 100; k++)
		fmt_snprintf(out, n, "%s_%u", base, k);
}

/* A disk plugged in after boot: its partitions are read on a task (blk_read yields, which a
 * poller may not). */
static void scan_task(void *arg)
{
	part_scan_disk(arg);
}

/* A LUN that answers TEST UNIT READY: capacity, serials, then the disk it was (the same drive
 * plugged in again) or a new one. `later`: found after the boot-time partition scan. */
static void lun_ready(struct msc *m, uint8_t lun, const struct scsi_inquiry *inq, bool later)
{
	uint64_t sectors;
	uint32_t ls, ps;
	int rc = read_capacity(m, lun, &sectors, &ls, &ps);
	if (rc < 0) {
		log_event(LOG_WARN, "usb: port %s LUN %u '%s %s': no capacity: %s", m->ud->path, lun, inq->vendor,
			  inq->product, err_str(rc));
		return;
	}
	char serial[32];
	unit_serial(m, lun, serial, sizeof(serial));
	if (!serial[0])
		fmt_snprintf(serial, sizeof(serial), "%s", m->ud->serial);
	/* The same drive plugged in again takes its old disk back (a paused rescue resumes): the one
	 * last seen on this port first, so that two drives alike in every identity field (sticks
	 * without serial numbers) swapped between ports do not swap names. */
	struct msc_lun *back = NULL;
	for (unsigned i = 0; i < nluns_all; i++) {
		struct msc_lun *o = all_luns[i];
		if (o->m || o->lun != lun || strcmp(o->usb_serial, m->ud->serial) || strcmp(o->dev.serial, serial) ||
		    strcmp(o->inq.vendor, inq->vendor) || strcmp(o->inq.product, inq->product) ||
		    o->dev.sectors != sectors || o->dev.lsize != ls)
			continue;
		if (!back || (o->hc == m->ud->hc && !strcmp(o->path, m->ud->path)))
			back = o;
	}
	if (back) {
		back->m = m;
		back->hc = m->ud->hc;
		memcpy(back->path, m->ud->path, sizeof(back->path));
		m->lun[lun] = back;
		log_event(LOG_INFO, "%s: the same drive is back on port %s", back->dev.name, m->ud->path);
		if (back->dev.flags & BLK_F_GONE)
			blk_set_returned(&back->dev);
		return;
	}
	if (nluns_all == sizeof(all_luns) / sizeof(all_luns[0]))
		return;
	struct msc_lun *l = kzalloc(sizeof(*l));
	if (!l)
		return;
	l->m = m;
	l->lun = lun;
	l->inq = *inq;
	l->vid = m->ud->desc.vid;
	l->pid = m->ud->desc.pid;
	memcpy(l->usb_serial, m->ud->serial, sizeof(l->usb_serial));
	l->hc = m->ud->hc;
	memcpy(l->path, m->ud->path, sizeof(l->path));
	struct blk_dev *d = &l->dev;
	lun_name(m->ud, lun, d->name, sizeof(d->name));
	d->transport = "usb";
	d->ops = &msc_ops;
	d->drv = l;
	d->sectors = sectors;
	d->lsize = ls;
	d->psize = ps;
	fmt_snprintf(d->model, sizeof(d->model), "%s%s%s", inq->vendor, inq->vendor[0] ? " " : "", inq->product);
	memcpy(d->serial, serial, sizeof(d->serial));
	memcpy(d->firmware, inq->rev, sizeof(inq->rev));
	d->max_sectors = MSC_MAX_BYTES / ls;
	d->queue_depth = 1;
	d->flags = BLK_F_FLUSH | (write_protected(m, lun) ? BLK_F_DEV_RO : 0) |
		   (is_boot_disk(m->ud, lun) ? BLK_F_BOOT : 0);
	if (blk_register(d) < 0) {
		kfree(l);
		return;
	}
	all_luns[nluns_all++] = l;
	m->lun[lun] = l;
	sat_identify(m, l);
	if (later && !task_spawn("usb-parts", scan_task, d))
		log_event(LOG_WARN, "%s: no task for its partition scan", d->name);
}

/* INQUIRY, then TEST UNIT READY for a moment (unit attentions after the reset pass): a LUN
 * still becoming ready then (a drive spinning up takes seconds) is left to msc_work, a step at
 * a time, so that other devices plugged in meanwhile are not kept waiting behind it. */
static void add_lun(struct msc *m, uint8_t lun)
{
	struct scsi_inquiry inq;
	int rc = inquiry(m, lun, &inq);
	if (rc < 0 || (inq.type != 0 && inq.type != 0x0e)) {
		if (rc < 0 && rc != -E_NOENT)
			log_event(LOG_INFO, "usb: port %s LUN %u: %s", m->ud->path, lun, err_str(rc));
		else if (rc == 0)
			log_event(LOG_INFO, "usb: port %s LUN %u: not a disk (SCSI type %u)", m->ud->path, lun, inq.type);
		return;
	}
	rc = wait_ready(m, lun, MSC_READY_INLINE_MS);
	if (rc == -E_AGAIN) {
		m->ready_by[lun] = deadline_in_ms(MSC_READY_TIMEOUT_MS);
		m->wait_inq[lun] = inq;
		log_event(LOG_INFO, "usb: port %s LUN %u '%s %s': becoming ready; it is added when it is",
			  m->ud->path, lun, inq.vendor, inq.product);
		usb_kick();
		return;
	}
	if (rc < 0) {
		log_event(LOG_WARN, "usb: port %s LUN %u '%s %s': not ready: %s", m->ud->path, lun, inq.vendor,
			  inq.product, err_str(rc));
		return;
	}
	lun_ready(m, lun, &inq, usb_hotplug_running);
}

static void msc_free(struct msc *m)
{
	dma_free(m->cbw, 32);
	dma_free(m->csw, 128);
	dma_free(m->sense, 256);
	dma_free(m->scratch, PAGE_SIZE);
	kfree(m);
}

static int msc_probe(struct usb_dev *ud, const struct usbd_iface *ifc)
{
	if (ifc->cls != 8 || (ifc->proto != 0x50 && ifc->proto != 0x62))
		return -E_UNSUPP;
	struct msc *m = kzalloc(sizeof(*m));
	if (!m)
		return -E_NOMEM;
	m->ud = ud;
	m->iface = ifc->num;
	m->x = ifc->proto == 0x62 ? &uas_xport : &bot_xport;
	uint8_t *by_pipe[5] = { NULL, &m->ep_cmd, &m->ep_stat, &m->ep_in, &m->ep_out };   /* UAS pipe usage ids */
	for (unsigned i = 0; i < ifc->neps; i++) {
		const struct usbd_ep *e = &ifc->ep[i];
		if (e->type != 2)
			continue;
		if (m->x == &bot_xport)
			*(e->addr & USB_DIR_IN ? &m->ep_in : &m->ep_out) = e->addr;
		else if (e->pipe_id >= 1 && e->pipe_id <= 4)
			*by_pipe[e->pipe_id] = e->addr;
	}
	if (m->x == &uas_xport && (!m->ep_cmd || !m->ep_stat))
		m->ep_in = 0;   /* no pipe usage descriptors: not a UAS interface we can drive */

	m->cbw = dma_alloc(32, 32);
	m->csw = dma_alloc(128, 64);
	m->sense = dma_alloc(256, 64);
	m->scratch = dma_alloc(PAGE_SIZE, PAGE_SIZE);
	int rc = !m->ep_in || !m->ep_out ? -E_UNSUPP : !m->cbw || !m->csw || !m->sense || !m->scratch ? -E_NOMEM : 0;
	if (rc == 0)
		rc = usb_hc_configure(ud, ifc);
	if (rc == 0 && m->x == &uas_xport && ud->speed >= USB_SPEED_SUPER) {
		m->streams = usb_hc_has_streams(ud, m->ep_stat) && usb_hc_has_streams(ud, m->ep_in) &&
			     usb_hc_has_streams(ud, m->ep_out);
		if (!m->streams) {
			log_event(LOG_WARN, "usb: port %s: UAS at SuperSpeed without bulk streams: not driven", ud->path);
			rc = -E_UNSUPP;
		}
	}
	if (rc < 0) {
		msc_free(m);
		return rc;
	}
	ud->drv = m;
	m->held = true;
	uint8_t *b = m->scratch;
	if (m->x == &uas_xport) {
		/* REPORT LUNS: single-level LUNs below MSC_MAX_LUNS; LUN 0 when it fails. */
		uint8_t cdb[12] = { 0xa0 };
		struct scsi_sense sn;
		put_be32(cdb + 6, 256);
		memset(b, 0, 256);
		int rc2 = scsi_sync(m, 0, cdb, 12, b, 256, &sn);
		uint32_t listlen = ((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]) / 8;
		m->nluns = 1;
		for (uint32_t i = 0; rc2 == 0 && i < listlen && 8 + 8 * i + 8 <= m->x_data.actual; i++)
			if (b[8 + 8 * i] == 0 && b[9 + 8 * i] < MSC_MAX_LUNS && b[9 + 8 * i] + 1u > m->nluns)
				m->nluns = b[9 + 8 * i] + 1u;
	} else {
		/* GET MAX LUN: a stall means one LUN. */
		b[0] = 0;
		int n = usb_control(ud, USB_DIR_IN | USB_TYPE_CLASS | USB_RECIP_IFACE, 0xfe, 0, m->iface, b, 1,
				    MSC_PROBE_TIMEOUT_MS);
		m->nluns = n == 1 && b[0] < MSC_MAX_LUNS ? b[0] + 1u : 1;
	}
	for (uint8_t lun = 0; lun < m->nluns; lun++)
		add_lun(m, lun);
	m->held = false;
	next_cmd(m);   /* what a LUN back from a re-plug was asked meanwhile */
	return 0;
}

static void msc_gone(struct usb_dev *ud)
{
	struct msc *m = ud->drv;
	if (!m)
		return;
	m->cur = NULL;
	m->busy = false;
	for (unsigned i = 0; i < m->nluns; i++) {
		struct msc_lun *l = m->lun[i];
		if (!l)
			continue;
		l->m = NULL;
		l->pending = NULL;
		blk_set_gone(&l->dev);   /* fails what was queued or in flight */
	}
	ud->drv = NULL;
	msc_free(m);
}

/* The disks of a device, for the `usb` tree. */
static void msc_show(struct usb_dev *ud)
{
	struct msc *m = ud->drv;
	const char *sep = " (";
	for (unsigned i = 0; m && i < m->nluns; i++)
		if (m->lun[i]) {
			kprintf("%s%s", sep, m->lun[i]->dev.name);
			sep = ", ";
		}
	for (unsigned i = 0; m && i < m->nluns; i++)
		if (m->ready_by[i]) {
			kprintf("%sLUN %u becoming ready", sep, i);
			sep = ", ";
		}
	if (sep[0] == ',')
		kprintf(")");
}

/* LUNs that were becoming ready at probe, on the USB task: one TEST UNIT READY each a step
 * (the task steps every 100 ms), while the device is idle; ready, the disk is added (the one
 * line of blk_register) and its partitions read on a task; still not ready after
 * MSC_READY_TIMEOUT_MS, it is left out, said once. True while a LUN is still waited for. */
static bool msc_work(struct usb_dev *ud)
{
	struct msc *m = ud->drv;
	bool more = false;
	for (uint8_t lun = 0; m && lun < m->nluns; lun++) {
		if (!m->ready_by[lun])
			continue;
		if (m->busy) {   /* another LUN's request: ask at the next step */
			more = true;
			continue;
		}
		m->held = true;
		int rc = tur_once(m, lun);
		if (rc == -E_AGAIN && !deadline_passed(m->ready_by[lun])) {
			more = true;
		} else {
			m->ready_by[lun] = 0;
			if (rc < 0)
				log_event(LOG_WARN, "usb: port %s LUN %u '%s %s': not ready after %u ms: %s", ud->path,
					  lun, m->wait_inq[lun].vendor, m->wait_inq[lun].product, MSC_READY_TIMEOUT_MS,
					  rc == -E_AGAIN ? "still becoming ready" : err_str(rc));
			else
				lun_ready(m, lun, &m->wait_inq[lun], true);
		}
		m->held = false;
		next_cmd(m);
	}
	return more;
}

static const struct usb_class_driver msc_driver = { "usb-msc", msc_probe, msc_gone, msc_show, msc_work };
USB_DRIVER(msc, msc_driver);
