/* Boot scripts (load options split on ';', cowboot.cfg on newlines) cut into command lines as
 * pure code, so the same splitting is fuzzed on the host. */
#ifndef KERNEL_LIB_SCRIPT_H
#define KERNEL_LIB_SCRIPT_H

struct script {
	char *next;     /* the rest of the text, NULL at the end */
	char sep;
	int lineno;     /* of the line script_next returned */
};

/* Works in place on `text` (NUL-terminated), which it cuts at each separator. */
void script_init(struct script *s, char *text, char sep);
/* The next command: leading blanks and anything from a CR on removed, empty lines and
 * '#' comments skipped. NULL at the end. */
char *script_next(struct script *s);

#endif
