/* Reports on the boot volume (app/report.c, docs/report.md): cowboot/<date>-<machine>/ with
 * events.log, every open overlay's mapfile and summary.txt, written by `report`, at the end of
 * each job and at power-off/reboot. */
#ifndef KERNEL_REPORT_H
#define KERNEL_REPORT_H

/* A job ended (its summary line, kept for summary.txt): writes the report when the boot volume
 * can take it. Called from the job's own task. */
void report_job_ended(const char *summary);
/* Writes the report now; why names the occasion in summary.txt. 0 or the error (printed). */
int report_write(const char *why);

#endif
