/* stat_text.h: dh-stat's text output (stat_text.c). See LICENSE. */
#ifndef DH_STAT_TEXT_H
#define DH_STAT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "dh_stat.h"

/* STAT_TEXT_ALL: --all-fields columns, free entries and the layout;
 * STAT_TEXT_RATES: the rate columns of --watch. */
enum { STAT_TEXT_ALL = 1, STAT_TEXT_RATES = 2 };

/* The table of channels ch[0..n) (sorted by the caller), one line each,
 * errors included; now_ns is the pass's CLOCK_REALTIME. */
void stat_text_list(const struct dh_stat_channel *ch, size_t n, uint64_t now_ns, unsigned flags);

/* One readable channel as "key value" lines and its participant table. */
void stat_text_channel(const struct dh_stat_channel *c, uint64_t now_ns, unsigned flags);

#endif
