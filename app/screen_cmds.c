/* `screen`: what the screen and the console's output queue are doing (mode, cells, scroll-back,
 * frames drawn; bytes queued, sent, dropped). */
#include "../kernel/console.h"
#include "../kernel/fbcon.h"
#include "../kernel/shell.h"
#include "../lib/errors.h"
#include "../lib/port.h"

static int cmd_screen(int argc, char **argv)
{
	if (argc > 2)
		return -E_USAGE;
	struct fbcon_info fi;
	fbcon_get_info(&fi);
	if (argc == 2) {
		/* `screen WxH` in cowboot.cfg: the loader set the mode before boot services ended. */
		char want[32];
		fmt_snprintf(want, sizeof(want), "%ux%u", fi.width, fi.height);
		if (strcmp(want, argv[1])) {
			kprintf("screen: %s is not the mode in use (%s); the mode is chosen at boot by a "
				"'screen %s' line in cowboot.cfg, when the firmware offers it\n", argv[1],
				fi.width ? want : "none", argv[1]);
			return cmd_said(-E_UNSUPP);
		}
	}
	if (fi.width)
		kprintf("screen: %ux%u, %ux%u cells (glyphs x%u), %u lines of scroll-back; %llu lines, %llu frames, "
			"%llu cells drawn in %llu ms\n", fi.width, fi.height, fi.cols, fi.rows, fi.scale, fi.history,
			(unsigned long long)fi.lines, (unsigned long long)fi.frames,
			(unsigned long long)fi.cells_drawn, (unsigned long long)(fi.draw_us / 1000));
	else
		kprintf("screen: none (no framebuffer or no firmware font)\n");
	struct console_stats st;
	console_get_stats(&st);
	kprintf("output: %llu bytes queued, %llu sent, %u waiting (queue %u), %llu lines dropped (%llu bytes), "
		"%llu progress lines coalesced, the shell waited %llu times\n",
		(unsigned long long)st.queued, (unsigned long long)st.sent, st.pending, st.size,
		(unsigned long long)st.dropped_lines, (unsigned long long)st.dropped_bytes,
		(unsigned long long)st.coalesced, (unsigned long long)st.shell_waits);
	return 0;
}
COMMAND(screen, "screen [<W>x<H>]", "the screen's mode and the console output queue's counters", NULL, cmd_screen);
