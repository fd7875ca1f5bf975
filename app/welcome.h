/* The first screen after boot: what was found and what to type next. */
#ifndef KERNEL_WELCOME_H
#define KERNEL_WELCOME_H
void welcome_print(void);
#endif
