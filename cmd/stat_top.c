/* stat_top.c: dh-stat --watch on a terminal, a full-screen live view (ncurses). See LICENSE. */
#include <errno.h>
#include <fnmatch.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>

#include "cli.h"
#include "stat_mon.h"

/* last: its capability macros (meta_off, ...) would rewrite dh headers */
#include <term.h>

int
stat_filter_match(const char *pattern, const char *name)
{
	if (strpbrk(pattern, "*?[") == NULL)
		return strstr(name, pattern) != NULL;
	return fnmatch(pattern, name, 0) == 0;
}

/* --- the last minute of each channel ----------------------------------------- */

/*
 * Messages per second of wall time, one bucket per second of the monotonic
 * clock.  A pass that covers several seconds (a long interval, a stopped
 * process) spreads its messages evenly over them, so the sparkline shows
 * the same shape whatever the refresh interval.
 */
#define WINDOW_S 60
#define NBUCKETS 64            /* > WINDOW_S: the second being filled is never shown */

struct hist {
	char *name;
	uint64_t created_ns;       /* another channel under the same name starts afresh */
	uint64_t msgs, mono;       /* messages_written and time at the last pass; mono 0: none yet */
	uint64_t first_sec;        /* first second with data */
	double bucket[NBUCKETS];
	uint64_t stamp[NBUCKETS];  /* second held by each bucket */
	int seen;
};

static void
hist_reset(struct hist *h, uint64_t created_ns)
{
	h->created_ns = created_ns;
	h->msgs = h->mono = 0;
	memset(h->bucket, 0, sizeof h->bucket);
	memset(h->stamp, 0, sizeof h->stamp);
}

static void
hist_add(struct hist *h, uint64_t sec, double v)
{
	size_t i = sec % NBUCKETS;

	if (h->stamp[i] != sec) {
		h->stamp[i] = sec;
		h->bucket[i] = 0;
	}
	h->bucket[i] += v;
}

static void
hist_update(struct hist *h, const struct dh_snapshot *s, uint64_t mono)
{
	uint64_t d, a, b;

	if (h->created_ns != s->created_ns || s->messages_written < h->msgs)
		hist_reset(h, s->created_ns);
	if (h->mono == 0 || mono <= h->mono) {
		if (h->mono == 0)
			h->first_sec = mono / 1000000000u;
		h->msgs = s->messages_written;
		h->mono = mono;
		return;
	}
	d = s->messages_written - h->msgs;
	/* spread d over [h->mono, mono), second by second; a gap longer than
	 * the window only needs its last minute */
	a = h->mono;
	if (mono - a > (uint64_t)NBUCKETS * 1000000000u)
		a = mono - (uint64_t)NBUCKETS * 1000000000u;
	for (; a < mono; a = b) {
		b = (a / 1000000000u + 1) * 1000000000u;
		if (b > mono)
			b = mono;
		hist_add(h, a / 1000000000u, (double)d * (double)(b - a) / (double)(mono - h->mono));
	}
	h->msgs = s->messages_written;
	h->mono = mono;
}

/* Messages in second sec, or -1 if not known (before the channel was seen,
 * or not over yet). */
static double
hist_at(const struct hist *h, uint64_t sec)
{
	size_t i = sec % NBUCKETS;

	if (h->mono == 0 || sec < h->first_sec || sec >= h->mono / 1000000000u)
		return -1;
	return h->stamp[i] == sec ? h->bucket[i] : 0;
}

/* width columns over the last minute: the mean rate of each column's
 * seconds, drawn on 8 levels scaled to the largest; ' ' where unknown. */
static void
sparkline(const struct hist *h, uint64_t now_sec, int width, int utf8, char *out, size_t cap)
{
	static const char *const blocks[] = { "\u2581", "\u2582", "\u2583", "\u2584",
					      "\u2585", "\u2586", "\u2587", "\u2588" };
	static const char ascii[] = "_.-:=+*#";
	double v[WINDOW_S], max = 0;
	size_t len = 0;

	if (width > WINDOW_S)
		width = WINDOW_S;
	for (int c = 0; c < width; c++) {
		/* column c covers seconds [s0, s1) of the minute ending at now_sec */
		uint64_t s0 = now_sec - WINDOW_S + (uint64_t)(c * WINDOW_S / width);
		uint64_t s1 = now_sec - WINDOW_S + (uint64_t)((c + 1) * WINDOW_S / width);
		double sum = 0;
		int n = 0;

		for (uint64_t s = s0; s < s1; s++) {
			double x = hist_at(h, s);
			if (x >= 0) {
				sum += x;
				n++;
			}
		}
		v[c] = n ? sum / n : -1;
		if (v[c] > max)
			max = v[c];
	}
	for (int c = 0; c < width && len + 4 < cap; c++) {
		int lv = v[c] <= 0 ? 0 : 1 + (int)(v[c] / max * 6.999);

		if (v[c] < 0)
			out[len++] = ' ';
		else if (utf8)
			len += (size_t)snprintf(out + len, cap - len, "%s", blocks[lv]);
		else
			out[len++] = ascii[lv];
	}
	out[len] = '\0';
}

/* --- the view ---------------------------------------------------------------- */

enum sort_key { SORT_NAME, SORT_MSGS, SORT_BYTES, SORT_FILL, SORT_LAG, SORT_HEALTH, SORT_N };
static const char *const sort_names[SORT_N] = { "name", "msg/s", "bytes/s", "fill", "lag", "health" };

enum { C_OK = 1, C_WARN, C_BAD, C_SPARK };

struct row {
	const struct dh_stat_channel *c;
	struct hist *h;
	struct dh_stat st;
	double fill;               /* 0..1, -1 unknown */
	double lag;                /* -1 unknown */
	int level;                 /* 0 ok, 1 warn, 2 bad, 3 error */
};

struct top {
	const struct stat_source *src;
	int64_t interval_ns;
	struct stat_frame f;
	int have_frame;
	uint64_t mono;             /* of the frame */
	struct hist *h;
	size_t nh;
	struct row *rows;
	size_t nrows, shown;
	enum sort_key sort;
	int reverse;
	char filter[128];
	int editing;
	char edit[128];
	int color, utf8;
	const char *error;         /* of the last pass */
};

static uint64_t
mono_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static struct hist *
hist_of(struct top *t, const char *name)
{
	struct hist *h;

	for (size_t i = 0; i < t->nh; i++)
		if (strcmp(t->h[i].name, name) == 0)
			return &t->h[i];
	if (!(h = realloc(t->h, (t->nh + 1) * sizeof *h)))
		return NULL;
	t->h = h;
	h = &t->h[t->nh];
	memset(h, 0, sizeof *h);
	if (!(h->name = strdup(name)))
		return NULL;
	t->nh++;
	return h;
}

/* A new pass: histories follow it, channels gone take theirs along. */
static void
take_pass(struct top *t)
{
	int rc = t->src->take(t->src->arg, &t->f);
	size_t k = 0;

	t->error = rc < 0 ? "cannot list the channels" : NULL;
	t->have_frame = rc == 0;
	if (rc < 0)
		return;
	t->mono = mono_now();
	for (size_t i = 0; i < t->nh; i++)
		t->h[i].seen = 0;
	for (size_t i = 0; i < t->f.n; i++) {
		const struct dh_stat_channel *c = &t->f.ch[i];
		struct hist *h = hist_of(t, c->name);

		if (h == NULL)
			continue;
		h->seen = 1;
		if (c->error == 0)
			hist_update(h, c->snap, t->mono);
	}
	for (size_t i = 0; i < t->nh; i++) {
		if (t->h[i].seen)
			t->h[k++] = t->h[i];
		else
			free(t->h[i].name);
	}
	t->nh = k;
}

static int
cmp_num(double a, double b)
{
	return a < b ? -1 : a > b;
}

static enum sort_key sort_by;

static int
row_cmp(const void *pa, const void *pb)
{
	const struct row *a = pa, *b = pb;
	int r = 0;

	switch (sort_by) {
	case SORT_NAME: break;
	case SORT_MSGS:
		r = cmp_num(a->c->has_rate ? a->c->msgs_per_s : -1, b->c->has_rate ? b->c->msgs_per_s : -1);
		break;
	case SORT_BYTES:
		r = cmp_num(a->c->has_rate ? a->c->bytes_per_s : -1, b->c->has_rate ? b->c->bytes_per_s : -1);
		break;
	case SORT_FILL: r = cmp_num(a->fill, b->fill); break;
	case SORT_LAG: r = cmp_num(a->lag, b->lag); break;
	case SORT_HEALTH: r = cmp_num(a->level, b->level); break;
	case SORT_N: break;
	}
	/* numbers: largest first; ties and names: by name */
	if (r != 0)
		return -r;
	return strcmp(a->c->name, b->c->name);
}

static void
build_rows(struct top *t)
{
	struct row *rows;
	size_t n = 0;

	t->nrows = t->shown = 0;
	if (!t->have_frame)
		return;
	if (!(rows = realloc(t->rows, (t->f.n ? t->f.n : 1) * sizeof *rows)))
		return;
	t->rows = rows;
	for (size_t i = 0; i < t->f.n; i++) {
		const struct dh_stat_channel *c = &t->f.ch[i];
		const char *pat = t->editing ? t->edit : t->filter;
		struct row *r = &rows[n];

		if (pat[0] && !stat_filter_match(pat, c->name))
			continue;
		memset(r, 0, sizeof *r);
		r->c = c;
		r->h = hist_of(t, c->name);
		r->fill = r->lag = -1;
		if (c->error != 0) {
			r->level = 3;
		} else {
			dh_stat_derive(c->snap, t->f.now_ns, &r->st);
			r->level = (int)r->st.level;
			if (r->st.lag_known) {
				r->fill = (double)r->st.fill / c->snap->cfg.slots;
				r->lag = (double)r->st.lag;
			}
		}
		n++;
	}
	sort_by = t->sort;
	qsort(rows, n, sizeof *rows, row_cmp);
	if (t->reverse)
		for (size_t i = 0; i < n / 2; i++) {
			struct row x = rows[i];
			rows[i] = rows[n - 1 - i];
			rows[n - 1 - i] = x;
		}
	t->nrows = n;
	t->shown = t->f.n;
}

/* 1234 -> "1234", 12345 -> "12.3k"; bytes: "12.3KiB". */
static const char *
rate_text(double v, int bytes, char *buf, size_t cap)
{
	static const char si[] = " kMGT";
	static const char iec[] = " KMGT";
	double base = bytes ? 1024 : 1000;
	int u = 0;

	while (v >= 10 * base && u < 4) {
		v /= base;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, bytes ? "%.0fB" : "%.1f", v);
	else if (bytes)
		snprintf(buf, cap, "%.1f%ciB", v, iec[u]);
	else
		snprintf(buf, cap, "%.1f%c", v, si[u]);
	return buf;
}

static void
put(int y, int x, int w, int right, const char *s)
{
	int len = (int)strlen(s);

	if (w <= 0)
		return;
	if (len > w) {
		mvaddnstr(y, x, s, w);
		return;
	}
	mvaddstr(y, right ? x + w - len : x, s);
}

static void
attr(struct top *t, int on, int pair, int extra)
{
	int a = extra | (t->color && pair ? COLOR_PAIR(pair) : 0);

	if (on)
		attron(a);
	else
		attroff(a);
}

/* Column geometry: fixed widths, the name and the sparkline get the rest
 * (the sparkline goes first when the terminal is narrow). */
struct cols {
	int name, spark;
};

#define W_POLICY 6
#define W_RATE 9
#define W_FILL 5
#define W_LAG 9
#define W_READERS 7
#define W_HEALTH 14

static struct cols
layout(const struct top *t, int width)
{
	struct cols c = { 0, 0 };
	int fixed = W_POLICY + 2 * W_RATE + W_FILL + W_LAG + W_READERS + W_HEALTH + 8, longest = 4;

	for (size_t i = 0; i < t->nrows; i++) {
		int l = (int)strlen(t->rows[i].c->name);
		if (l > longest)
			longest = l;
	}
	c.name = longest < 40 ? longest : 40;
	c.spark = width - fixed - c.name - 1;
	if (c.spark > 30)
		c.spark = 30;
	if (c.spark < 10)
		c.spark = 0;
	if (fixed + c.name + (c.spark ? c.spark + 1 : 0) > width)
		c.name = width - fixed - (c.spark ? c.spark + 1 : 0);
	if (c.name < 4)
		c.name = 4;
	return c;
}

static void
draw(struct top *t)
{
	char buf[256], b2[64], clock[16];
	struct cols w;
	time_t now = time(NULL);
	struct tm tm;
	int y = 0, x, width = COLS, height = LINES;

	erase();
	w = layout(t, width);
	localtime_r(&now, &tm);
	strftime(clock, sizeof clock, "%H:%M:%S", &tm);
	snprintf(buf, sizeof buf, "dh-stat  %s  %zu of %zu channels  every %.3gs  sort: %s%s%s%s", clock,
		 t->nrows, t->shown, (double)t->interval_ns / 1e9, sort_names[t->sort],
		 t->reverse ? " (reversed)" : "", t->filter[0] ? "  filter: " : "", t->filter);
	attr(t, 1, 0, A_REVERSE);
	mvhline(0, 0, ' ', width);
	put(0, 0, width, 0, buf);
	attr(t, 0, 0, A_REVERSE);
	if (t->error)
		put(1, 0, width, 0, t->error);
	y = 2;
	attr(t, 1, 0, A_BOLD);
	x = 0;
	put(y, x, w.name, 0, "NAME");
	x += w.name + 1;
	put(y, x, W_POLICY, 0, "POLICY");
	x += W_POLICY + 1;
	put(y, x, W_RATE, 1, "MSG/S");
	x += W_RATE + 1;
	put(y, x, W_RATE, 1, "BYTES/S");
	x += W_RATE + 1;
	if (w.spark) {
		put(y, x, w.spark, 0, "LAST MINUTE");
		x += w.spark + 1;
	}
	put(y, x, W_FILL, 1, "FILL");
	x += W_FILL + 1;
	put(y, x, W_LAG, 1, "LAG");
	x += W_LAG + 1;
	put(y, x, W_READERS, 1, "READERS");
	x += W_READERS + 1;
	put(y, x, width - x, 0, "HEALTH");
	attr(t, 0, 0, A_BOLD);
	y++;

	for (size_t i = 0; i < t->nrows && y < height - 1; i++, y++) {
		const struct row *r = &t->rows[i];
		const struct dh_stat_channel *c = r->c;
		int pair = r->level == 0 ? C_OK : r->level == 1 ? C_WARN : C_BAD;

		dh_stat_safe(c->name, buf, sizeof buf);
		x = 0;
		put(y, x, w.name, 0, buf);
		x += w.name + 1;
		if (c->error != 0) {
			snprintf(buf, sizeof buf, "error: %s", dh_strerror(c->error));
			attr(t, 1, C_BAD, t->color ? 0 : A_BOLD);
			put(y, x, width - x, 0, buf);
			attr(t, 0, C_BAD, t->color ? 0 : A_BOLD);
			continue;
		}
		put(y, x, W_POLICY, 0, dh_policy_name(c->snap->cfg.policy));
		x += W_POLICY + 1;
		put(y, x, W_RATE, 1, c->has_rate ? rate_text(c->msgs_per_s, 0, b2, sizeof b2) : "-");
		x += W_RATE + 1;
		put(y, x, W_RATE, 1, c->has_rate ? rate_text(c->bytes_per_s, 1, b2, sizeof b2) : "-");
		x += W_RATE + 1;
		if (w.spark) {
			if (r->h) {
				sparkline(r->h, t->mono / 1000000000u, w.spark, t->utf8, buf, sizeof buf);
				attr(t, 1, C_SPARK, 0);
				mvaddstr(y, x, buf);
				attr(t, 0, C_SPARK, 0);
			}
			x += w.spark + 1;
		}
		if (r->fill >= 0)
			snprintf(b2, sizeof b2, "%.0f%%", r->fill * 100);
		else
			snprintf(b2, sizeof b2, "-");
		put(y, x, W_FILL, 1, b2);
		x += W_FILL + 1;
		if (r->lag >= 0)
			snprintf(b2, sizeof b2, "%.0f", r->lag);
		else
			snprintf(b2, sizeof b2, "-");
		put(y, x, W_LAG, 1, b2);
		x += W_LAG + 1;
		snprintf(b2, sizeof b2, "%u/%u", r->st.readers_alive, r->st.readers);
		put(y, x, W_READERS, 1, b2);
		x += W_READERS + 1;
		attr(t, 1, pair, !t->color && r->level == 2 ? A_BOLD : 0);
		put(y, x, width - x, 0, dh_health_format(&r->st, buf, sizeof buf));
		attr(t, 0, pair, !t->color && r->level == 2 ? A_BOLD : 0);
	}

	if (t->editing)
		snprintf(buf, sizeof buf, "filter (glob; Enter applies, Esc cancels): %s", t->edit);
	else
		snprintf(buf, sizeof buf, "q quit  s/S sort  r reverse  / filter  Esc clear filter");
	attr(t, 1, 0, A_REVERSE);
	mvhline(height - 1, 0, ' ', width);
	put(height - 1, 0, width, 0, buf);
	attr(t, 0, 0, A_REVERSE);
	if (t->editing) {
		curs_set(1);
		move(height - 1, (int)strlen(buf) < width ? (int)strlen(buf) : width - 1);
	} else {
		curs_set(0);
	}
	refresh();
}

/* One key; 1 to quit. */
static int
key(struct top *t, int k)
{
	size_t n;

	if (t->editing) {
		n = strlen(t->edit);
		if (k == 27) {                  /* Esc: the filter as it was */
			t->editing = 0;
		} else if (k == '\n' || k == '\r' || k == KEY_ENTER) {
			memcpy(t->filter, t->edit, sizeof t->filter);
			t->editing = 0;
		} else if (k == 21) {           /* ^U, as in a shell */
			t->edit[0] = '\0';
		} else if ((k == KEY_BACKSPACE || k == 127 || k == 8) && n > 0) {
			t->edit[n - 1] = '\0';
		} else if (k >= 32 && k < 127 && n + 1 < sizeof t->edit) {
			t->edit[n] = (char)k;
			t->edit[n + 1] = '\0';
		}
		return 0;
	}
	switch (k) {
	case 'q':
	case 'Q':
		return 1;
	case 's':
		t->sort = (t->sort + 1) % SORT_N;
		break;
	case 'S':
		t->sort = (t->sort + SORT_N - 1) % SORT_N;
		break;
	case 'r':
		t->reverse = !t->reverse;
		break;
	case '/':
		t->editing = 1;
		memcpy(t->edit, t->filter, sizeof t->edit);
		break;
	case 27:
		t->filter[0] = '\0';
		break;
	default:
		break;
	}
	return 0;
}

static int
can_address(void)
{
	TERMINAL *saved = cur_term;
	const char *cup;
	int err = 0, ok;

	if (setupterm(NULL, STDOUT_FILENO, &err) != OK)
		return 0;
	cup = tigetstr("cup");
	ok = cup != NULL && cup != (char *)-1;
	del_curterm(cur_term);
	set_curterm(saved);
	return ok;
}

int
stat_top(const struct stat_source *src, int64_t interval_ns, const char *filter)
{
	struct top t = { .src = src, .interval_ns = interval_ns };
	const char *nc = getenv("NO_COLOR");
	int keys = isatty(STDIN_FILENO), quit = 0;
	uint64_t next;
	SCREEN *scr;

	if (filter)
		snprintf(t.filter, sizeof t.filter, "%s", filter);
	setlocale(LC_ALL, "");
	t.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	/* a terminal that cannot move its cursor (dumb, unknown) gets the
	 * plain listing instead */
	if (!can_address())
		return -1;
	/* before ncurses: it leaves handlers it finds in place */
	cli_catch_signals(0);
	if ((scr = newterm(NULL, stdout, stdin)) == NULL)
		return -1;
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	t.color = (nc == NULL || nc[0] == '\0') && has_colors();
	if (t.color) {
		start_color();
		use_default_colors();
		init_pair(C_OK, COLOR_GREEN, -1);
		init_pair(C_WARN, COLOR_YELLOW, -1);
		init_pair(C_BAD, COLOR_RED, -1);
		init_pair(C_SPARK, COLOR_CYAN, -1);
	}

	next = mono_now();
	while (!cli_signal && !quit) {
		struct pollfd p[2];
		uint64_t now = mono_now();
		int np = 0, k, ms;

		if (now >= next) {
			take_pass(&t);
			next += (uint64_t)interval_ns;
			if (next < now)         /* fell behind: keep the cadence from here */
				next = now + (uint64_t)interval_ns;
		}
		build_rows(&t);
		draw(&t);
		if (keys)
			p[np++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		if (cli_signal_fd() >= 0)
			p[np++] = (struct pollfd){ .fd = cli_signal_fd(), .events = POLLIN };
		now = mono_now();
		ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
		if (poll(p, (nfds_t)np, ms) < 0 && errno != EINTR)
			break;
		while (!quit && (k = getch()) != ERR)
			quit = key(&t, k);
	}
	endwin();
	delscreen(scr);
	for (size_t i = 0; i < t.nh; i++)
		free(t.h[i].name);
	free(t.h);
	free(t.rows);
	cli_reraise();
	return EXIT_OK;
}
