/* cli.c: helpers shared by the dh-* commands: messages, usage, strict parsers, full I/O. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

const char *cli_prog = "dh";
volatile sig_atomic_t cli_signal;

void
cli_init(int argc, char **argv)
{
	const char *slash;

	if (argc < 1 || argv[0] == NULL || argv[0][0] == '\0')
		return;
	slash = strrchr(argv[0], '/');
	cli_prog = slash != NULL && slash[1] != '\0' ? slash + 1 : argv[0];
}

static void vmsg(int code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
vmsg(int code, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", cli_prog);
	vfprintf(stderr, fmt, ap);
	if (code != 0)
		fprintf(stderr, ": %s", dh_strerror(code));
	fputc('\n', stderr);
}

void
cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(0, fmt, ap);
	va_end(ap);
}

void
cli_warnc(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(code, fmt, ap);
	va_end(ap);
}

void
cli_die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(0, fmt, ap);
	va_end(ap);
	exit(status);
}

void
cli_diec(int status, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(code, fmt, ap);
	va_end(ap);
	exit(status);
}

void
cli_usage(const char *synopsis, const char *reason, ...)
{
	va_list ap;

	if (reason != NULL) {
		va_start(ap, reason);
		vmsg(0, reason, ap);
		va_end(ap);
	}
	cli_print_usage(stderr, (const char *const[]){ synopsis, NULL });
	exit(EXIT_USAGE);
}

void
cli_version(void)
{
	printf("%s %s\n", cli_prog, DH_VERSION);
	exit(cli_close_stdout());
}

/* One escaper for text output, the library's: here only the empty string
 * gets a visible form, since an argument may be empty. */
const char *
cli_safe(const char *s, char *buf, size_t cap)
{
	if (cap < 8)
		return "?";
	if (s[0] == '\0') {
		strcpy(buf, "''");
		return buf;
	}
	return dh_stat_safe(s, buf, cap);
}

/* Digits only, base 10 or 8; no sign, no blanks, no junk. */
static int
parse_digits(const char **sp, unsigned base, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;
	int range = 0;

	if (*s < '0' || *s >= (char)('0' + base))
		return -EINVAL;
	for (; *s >= '0' && *s < (char)('0' + base); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / base)
			range = 1;
		else
			v = v * base + d;
	}
	*sp = s;
	*out = v;
	return range ? -ERANGE : 0;
}

int
cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	int r;

	if (s == NULL)
		return -EINVAL;
	r = parse_digits(&s, 10, &v);
	if (r == -EINVAL || *s != '\0')
		return -EINVAL;
	if (r < 0 || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int
cli_parse_octal(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v;
	int r;

	if (s == NULL)
		return -EINVAL;
	r = parse_digits(&s, 8, &v);
	if (r == -EINVAL || *s != '\0')
		return -EINVAL;
	if (r < 0 || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int
cli_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v, mul = 1;
	int r;

	if (s == NULL)
		return -EINVAL;
	r = parse_digits(&s, 10, &v);
	if (r == -EINVAL)
		return -EINVAL;
	switch (*s) {
	case '\0':
		break;
	case 'K': case 'k':
		mul = 1ull << 10;
		s++;
		break;
	case 'M': case 'm':
		mul = 1ull << 20;
		s++;
		break;
	case 'G': case 'g':
		mul = 1ull << 30;
		s++;
		break;
	default:
		return -EINVAL;
	}
	if (*s != '\0')
		return -EINVAL;
	if (r < 0 || v > UINT64_MAX / mul)
		return -ERANGE;
	v *= mul;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int
cli_parse_duration(const char *s, int64_t *out_ns)
{
	uint64_t whole, frac = 0, fscale = 1, unit, ns;
	int r;

	if (s == NULL)
		return -EINVAL;
	if (strcmp(s, "inf") == 0) {
		*out_ns = -1;
		return 0;
	}
	r = parse_digits(&s, 10, &whole);
	if (r == -EINVAL)
		return -EINVAL;
	if (*s == '.') {	/* up to nanosecond precision: "1.5s", "0.25" */
		s++;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (fscale < 1000000000ull) {
				frac = frac * 10 + (uint64_t)(*s - '0');
				fscale *= 10;
			}
		}
	}
	if (*s == '\0' || strcmp(s, "s") == 0)
		unit = 1000000000ull;
	else if (strcmp(s, "ms") == 0)
		unit = 1000000ull;
	else if (strcmp(s, "m") == 0)
		unit = 60000000000ull;
	else
		return -EINVAL;
	if (r < 0 || whole > (uint64_t)INT64_MAX / unit)
		return -ERANGE;
	ns = whole * unit;
	/* frac < fscale <= 1e9 and unit <= 6e10: split to avoid overflow. */
	ns += frac * (unit / fscale) + frac * (unit % fscale) / fscale;
	if (ns > (uint64_t)INT64_MAX)
		return -ERANGE;
	*out_ns = (int64_t)ns;
	return 0;
}

uint64_t
cli_opt_number(const char *opt, const char *arg, int size, uint64_t min, uint64_t max)
{
	char buf[64];
	uint64_t v;
	int r = size ? cli_parse_size(arg, min, max, &v) : cli_parse_u64(arg, min, max, &v);

	if (r == -ERANGE)
		cli_die(EXIT_USAGE, "--%s %s: out of range (%llu..%llu)", opt, cli_safe(arg, buf, sizeof buf),
			(unsigned long long)min, (unsigned long long)max);
	if (r < 0)
		cli_die(EXIT_USAGE, "--%s %s: invalid %s", opt, cli_safe(arg, buf, sizeof buf),
			size ? "size" : "number");
	return v;
}

int64_t
cli_opt_duration(const char *opt, const char *arg)
{
	char buf[64];
	int64_t ns;

	if (cli_parse_duration(arg, &ns) < 0)
		cli_die(EXIT_USAGE, "--%s %s: invalid duration", opt, cli_safe(arg, buf, sizeof buf));
	return ns;
}

void
cli_config_init(struct cli_config *c)
{
	memset(c, 0, sizeof *c);
	dh_config_init(&c->cfg);
	c->evict_ns = -1;
}

const char *
cli_choices(int checksums, char *buf, size_t cap)
{
	return checksums ? dh_checksum_names(", ", buf, cap) : dh_policy_names(", ", buf, cap);
}

int
cli_config_option(int opt, const char *arg, struct cli_config *c)
{
	struct dh_config *cfg = &c->cfg;
	char buf[64], list[128];
	uint64_t v;

	switch (opt) {
	case CLI_OPT_CHECKSUM:
		if (dh_checksum_parse(arg, &cfg->checksum) < 0)
			cli_die(EXIT_USAGE, "--checksum %s: unknown checksum (%s)", cli_safe(arg, buf, sizeof buf),
				cli_choices(1, list, sizeof list));
		c->checksum = 1;
		break;
	case CLI_OPT_EVICT:
		c->evict_ns = cli_opt_duration("evict-after", arg);
		/* "evict at once" would cut loose every reader that falls one
		 * slot behind: almost certainly a typo for a duration */
		if (c->evict_ns == 0)
			cli_die(EXIT_USAGE, "--evict-after %s: invalid duration", cli_safe(arg, buf, sizeof buf));
		c->evict = 1;
		break;
	case CLI_OPT_MAX_READERS:
		cfg->max_readers = (uint32_t)cli_opt_number("max-readers", arg, 0, 1, DH_READERS_MAX);
		break;
	case CLI_OPT_META_SIZE:
		cfg->meta_size = (uint32_t)cli_opt_number("meta-size", arg, 1, 0, DH_META_MAX);
		break;
	case CLI_OPT_MODE:
		if (cli_parse_octal(arg, 0777, &v) < 0 || (v & 0600) != 0600)
			cli_die(EXIT_USAGE, "--mode %s: invalid mode (octal, 0600 to 0777, owner rw)",
				cli_safe(arg, buf, sizeof buf));
		if (dh_mode_check((unsigned)v) < 0)
			cli_die(EXIT_USAGE, "--mode %s: read-only or write-only access would let that user block "
				"the channel (group and others: rw or nothing, e.g. 0600, 0660, 0666)",
				cli_safe(arg, buf, sizeof buf));
		cfg->mode = (unsigned)v;
		break;
	case CLI_OPT_POLICY:
		if (dh_policy_parse(arg, &cfg->policy) < 0)
			cli_die(EXIT_USAGE, "--policy %s: unknown policy (%s)", cli_safe(arg, buf, sizeof buf),
				cli_choices(0, list, sizeof list));
		break;
	case CLI_OPT_SLOT_SIZE:
		cfg->slot_size = (uint32_t)cli_opt_number("slot-size", arg, 1, 1, DH_SLOT_SIZE_MAX);
		c->slot_size = 1;
		break;
	case CLI_OPT_SLOTS:
		cfg->slots = (uint32_t)cli_opt_number("slots", arg, 0, 1, DH_SLOTS_MAX);
		break;
	default:
		return 0;
	}
	c->any = 1;
	return 1;
}

void
cli_config_finish(struct cli_config *c)
{
	struct dh_schema *sc;
	uint32_t size;

	if (c->evict) {
		if (!dh_policy_info(c->cfg.policy)->evictable)
			cli_die(EXIT_USAGE, "--evict-after: only for --policy sync");
		c->cfg.evict_after_ns = c->evict_ns < 0 ? 0 : (uint64_t)c->evict_ns;
	}
	if (c->cfg.schema == NULL)
		return;
	/* one record per message: the slot follows the record unless given */
	sc = cli_schema_parse(c->cfg.schema);
	size = sc->size;
	free(sc);
	if (!c->slot_size)
		c->cfg.slot_size = size;
	else if (size > c->cfg.slot_size)
		cli_die(EXIT_USAGE, "--schema: a record of %u bytes does not fit a slot of %u", size,
			c->cfg.slot_size);
}

struct dh_schema *
cli_schema_parse(const char *spec)
{
	struct dh_schema *sc = malloc(sizeof *sc);
	uint32_t at;
	int r;

	if (sc == NULL)
		cli_die(EXIT_FAIL, "out of memory");
	if ((r = dh_schema_parse(spec, sc)) < 0) {
		at = sc->error_at;
		free(sc);       /* leak checkers look at exit */
		if (r == -EINVAL) {
			/* name the bad token: from the error to the next ';' (or
			 * the ';' itself, of an empty field) */
			char tok[64], esc[4 * sizeof tok + 8];
			size_t n;

			if (at >= strlen(spec))
				cli_die(EXIT_USAGE, "--schema: syntax error at byte %u of the spec (at its end)", at);
			if ((n = strcspn(spec + at, ";")) == 0)
				n = 1;
			snprintf(tok, sizeof tok, "%.*s%s", (int)(n < 40 ? n : 40), spec + at, n > 40 ? "..." : "");
			cli_die(EXIT_USAGE, "--schema: syntax error at byte %u of the spec, at '%s'", at,
				cli_safe(tok, esc, sizeof esc));
		}
		cli_diec(EXIT_USAGE, r, "--schema");
	}
	return sc;
}

struct dh_schema *
cli_channel_schema(struct dh_block *b, const char *name)
{
	char canon[DH_SCHEMA_MAX];
	uint8_t hash[32];
	struct dh_schema *sc;
	int size = dh_block_schema(b, canon, sizeof canon, hash), r;

	if (size < 0)
		cli_diec(EXIT_FAIL, size, "%s: schema", name);
	if (size == 0)
		return NULL;
	if ((sc = malloc(sizeof *sc)) == NULL)
		cli_diec(EXIT_FAIL, -ENOMEM, "%s", name);
	if ((r = dh_schema_parse(canon, sc)) < 0 || sc->size != (uint32_t)size) {
		free(sc);
		cli_diec(EXIT_FAIL, r < 0 ? r : -DH_ECORRUPT, "%s: the channel's schema", name);
	}
	return sc;
}

void
cli_schema_mismatch(const char *name, const struct dh_schema *want)
{
	char canon[DH_SCHEMA_MAX], have[65 + 2 + DH_SCHEMA_MAX + 1] = "no schema", hex[65];
	uint8_t hash[32];
	struct dh_block *b;

	if (dh_block_open(name, DH_OPEN_RDONLY, &b) == 0) {
		if (dh_block_schema(b, canon, sizeof canon, hash) > 0) {
			dh_schema_hash_hex(hash, hex);
			snprintf(have, sizeof have, "%s (%s)", hex, canon);
		}
		dh_block_close(b);
	}
	dh_schema_hash_hex(want->hash, hex);
	cli_die(EXIT_FAIL, "%s: schema mismatch: channel has %s, expected %s (%s)", name, have, hex,
		want->canonical);
}

int
cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR && !cli_signal)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
cli_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0) {
			if (errno == EINTR && !cli_signal)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int
cli_close_stdout(void)
{
	int bad = 0, err = 0;

	if (fflush(stdout) != 0 || ferror(stdout)) {
		bad = 1;
		err = errno;
	}
	if (fclose(stdout) != 0 && !bad) {
		bad = 1;
		err = errno;
	}
	if (!bad)
		return 0;
	if (err != EPIPE)
		cli_warn("write error: %s", err != 0 ? strerror(err) : "unknown error");
	return EXIT_FAIL;
}

struct dh_cancel cli_cancel;
static int sig_pipe[2] = { -1, -1 };

static void
on_signal(int sig)
{
	int saved = errno;

	cli_signal = sig;
	dh_cancel_raise(&cli_cancel);
	if (sig_pipe[1] >= 0)
		(void)!write(sig_pipe[1], "", 1);
	errno = saved;
}

int
cli_signal_fd(void)
{
	return sig_pipe[0];
}

void
cli_catch_signals(int catch_pipe)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
	struct sigaction sa;
	size_t i;

	/* The flag alone misses a signal that lands between its test and a
	 * blocking call: library waits watch cli_cancel, poll(2) loops also
	 * poll this pipe's read end.  Non-blocking: a flood of signals must
	 * never block the handler. */
	if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		sig_pipe[0] = sig_pipe[1] = -1;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: blocking calls return EINTR */
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		if (sigs[i] == SIGPIPE && !catch_pipe)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
}

void
cli_reraise(void)
{
	int sig = cli_signal;
	sigset_t set;

	if (sig == 0)
		return;
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	_exit(128 + sig);
}

/*
 * A segment truncated (or shrunk by a hostile user) under our mapping
 * turns the next access into SIGBUS.  The library cannot catch that
 * without process-wide state, so each command does: either jump back to
 * report the channel and go on (cli_bus_armed), or one line naming the
 * channel and exit 1 (cli_guard_mapping), instead of a core dump.  The
 * message is formatted beforehand because a signal handler may only
 * write(2).
 */
sigjmp_buf cli_bus_env;
volatile sig_atomic_t cli_bus_armed;
static char bus_msg[512];
static size_t bus_len;

static void
on_sigbus(int sig)
{
	if (cli_bus_armed) {
		cli_bus_armed = 0;
		siglongjmp(cli_bus_env, 1);
	}
	if (bus_len > 0) {
		if (write(STDERR_FILENO, bus_msg, bus_len) < 0) {
			/* nothing more we can do */
		}
		_exit(EXIT_FAIL);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

void
cli_bus_catch(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

void
cli_guard_mapping(const char *channel)
{
	int n;

	n = snprintf(bus_msg, sizeof bus_msg, "%s: %s: segment truncated underneath (bus error)\n", cli_prog,
		     channel);
	bus_len = n < 0 ? 0 : (size_t)n < sizeof bus_msg ? (size_t)n : sizeof bus_msg - 1;
	cli_bus_catch();
}

void
cli_bad_option(const char *synopsis, int c, char **argv)
{
	if (c == ':')
		cli_usage(synopsis, "option %s needs an argument", argv[optind - 1]);
	if (optopt != 0)
		cli_usage(synopsis, "unknown option -%c", optopt);
	cli_usage(synopsis, "unknown option %s", argv[optind - 1]);
}

void
cli_framing(enum dh_frame_mode *mode, int *csv, enum dh_frame_mode m, int want_csv, const char *synopsis,
	    const char *family)
{
	if (*mode != DH_FRAME_RAW && (*mode != m || *csv != want_csv))
		cli_usage(synopsis, "%s exclude each other", family);
	*mode = m;
	*csv = want_csv;
}

void
cli_key_load(const char *path, uint8_t *key, int status)
{
	char buf[PATH_MAX + 64];       /* a path shown whole: it says which file */
	int r;

	if ((r = dh_key_load(path, key)) < 0)
		cli_diec(status, r, "%s", cli_safe(path, buf, sizeof buf));
}

void
cli_config_key_conflict(const struct cli_config *c)
{
	if (c->cfg.key != NULL && c->checksum)
		cli_die(EXIT_USAGE, "--key and --checksum exclude each other: a key selects the keyed MAC");
}

static int
parse_user(const char *user, uid_t *uid)
{
	struct passwd *pw;
	uint64_t v;

	if (user[0] == '\0')
		return -1;
	if ((pw = getpwnam(user)) != NULL)
		*uid = pw->pw_uid;
	else if (cli_parse_u64(user, 0, UINT32_MAX - 1, &v) == 0)
		*uid = (uid_t)v;
	else
		return -1;
	return 0;
}

void
cli_owner_set(struct cli_owner *o, const char *user, const char *synopsis)
{
	char buf[64];

	if (parse_user(user, &o->uid) < 0)
		cli_usage(synopsis, "--owner %s: no such user", cli_safe(user, buf, sizeof buf));
	o->set = 1;
}

void
cli_owner_env(struct cli_owner *o, const char *synopsis)
{
	const char *e = getenv("DH_OWNER");
	char buf[64];

	if (o->set || e == NULL || e[0] == '\0')
		return;
	if (parse_user(e, &o->uid) < 0)
		cli_usage(synopsis, "DH_OWNER=%s: no such user", cli_safe(e, buf, sizeof buf));
	o->set = 1;
}

static int
owner_trusted(const struct cli_owner *o, uid_t uid)
{
	return o->set ? uid == o->uid : uid == geteuid() || uid == 0;
}

static _Noreturn void
owner_refuse(const struct cli_owner *o, const char *name, uid_t uid)
{
	struct passwd *pw = getpwuid(uid);
	char who[80];

	if (pw != NULL)
		snprintf(who, sizeof who, "%s", pw->pw_name);
	else
		snprintf(who, sizeof who, "%lu", (unsigned long)uid);
	if (o->set)
		cli_die(EXIT_FAIL, "%s: channel owned by %s, not by the required owner (uid %lu)", name, who,
			(unsigned long)o->uid);
	cli_die(EXIT_FAIL, "%s: channel owned by %s, not by you or root (--owner %s to trust it)", name, who,
		who);
}

void
cli_owner_precheck(const struct cli_owner *o, const char *name)
{
	struct dh_block *b;
	uid_t uid;

	if (dh_block_open(name, DH_OPEN_RDONLY | DH_OPEN_NOWAIT, &b) < 0)
		return;
	uid = dh_block_owner(b);
	dh_block_close(b);
	if (!owner_trusted(o, uid))
		owner_refuse(o, name, uid);
}

void
cli_owner_enforce(const struct cli_owner *o, const char *name, struct dh_block *b, void (*undo)(void *),
		  void *arg)
{
	uid_t uid = dh_block_owner(b);

	if (owner_trusted(o, uid))
		return;
	if (undo != NULL)
		undo(arg);
	owner_refuse(o, name, uid);
}

/* The length of the word of s (up to a blank) that begins at s, with the
 * bracketed groups it opens when whole is set: the unit a line is broken
 * before. */
static size_t
usage_word(const char *s, int whole)
{
	size_t n = 0;
	int depth = 0;

	for (; s[n] != '\0'; n++) {
		if (s[n] == ' ' && (depth <= 0 || !whole))
			break;
		if (s[n] == '[')
			depth++;
		else if (s[n] == ']')
			depth--;
	}
	return n;
}

void
cli_print_usage(FILE *f, const char *const *forms)
{
	enum { WIDTH = 80 };

	for (size_t i = 0; forms[i] != NULL; i++) {
		const char *s = forms[i];
		size_t cmd = strcspn(s, " "), indent = 7 + cmd + 1, col;

		fprintf(f, "%s%.*s", i == 0 ? "usage: " : "       ", (int)cmd, s);
		col = 7 + cmd;
		s += cmd;
		while (*s == ' ')
			s++;
		while (*s != '\0') {
			/* a whole group if it fits a line, else word by word */
			size_t n = usage_word(s, 1);

			if (indent + n > WIDTH)
				n = usage_word(s, 0);
			if (col > indent && col + 1 + n > WIDTH) {
				fprintf(f, "\n%*s", (int)indent, "");
				col = indent;
			} else {
				fputc(' ', f);
				col++;
			}
			fprintf(f, "%.*s", (int)n, s);
			col += n;
			s += n;
			while (*s == ' ')
				s++;
		}
		fputc('\n', f);
	}
}
