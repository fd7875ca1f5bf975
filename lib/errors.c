/* Message table for the shared error list in errors.h. */
#include "errors.h"

static const char *const err_msgs[E__COUNT] = {
	[E_NONE] = "success",
#define COW_ERR_MSG(name, msg) [name] = msg,
	COW_ERROR_LIST(COW_ERR_MSG)
#undef COW_ERR_MSG
};

static const char *const err_names[E__COUNT] = {
	[E_NONE] = "E_NONE",
#define COW_ERR_NAME(name, msg) [name] = #name,
	COW_ERROR_LIST(COW_ERR_NAME)
#undef COW_ERR_NAME
};

static int err_index(int err)
{
	if (err < 0)
		err = -err;
	return err < E__COUNT ? err : -1;
}

const char *err_str(int err)
{
	int i = err_index(err);
	return i < 0 ? "unknown error" : err_msgs[i];
}

const char *err_name(int err)
{
	int i = err_index(err);
	return i < 0 ? "E_UNKNOWN" : err_names[i];
}
