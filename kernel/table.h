/* Linker tables (after iPXE): each file registers its commands, drivers and pollers in a
 * named section; linker.ld gathers .tbl.<name>.* sorted, between __tbl_<name>_start/_end. */
#ifndef KERNEL_TABLE_H
#define KERNEL_TABLE_H

#define TABLE_ENTRY(table, key) \
	__attribute__((used, section(".tbl." #table "." #key), aligned(8)))

#define TABLE_START(table, type) ({ extern type __tbl_##table##_start[]; __tbl_##table##_start; })
#define TABLE_END(table, type)   ({ extern type __tbl_##table##_end[]; __tbl_##table##_end; })
#define for_each_table_entry(p, table, type) \
	for (type *p = TABLE_START(table, type); p < TABLE_END(table, type); p++)

#endif
