/* cli.h: helpers shared by the dh-* commands only (never by lib/). See LICENSE. */
#ifndef DH_CLI_H
#define DH_CLI_H

#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "dh.h"

/* Exit statuses used by every command. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

/* Set once from argv[0] (basename) by cli_init; used as the error prefix. */
extern const char *cli_prog;

void cli_init(int argc, char **argv);

/* "prog: msg" on stderr. cli_errc appends ": " and the message for a libdh
 * code (negative errno or -DH_E*). The x-forms exit with status. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warnc(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void cli_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void cli_diec(int status, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Print "usage: <synopsis>" to stderr (wrapped as cli_print_usage does),
 * an optional reason line before it, and exit 2. synopsis must equal the
 * man page SYNOPSIS. */
_Noreturn void cli_usage(const char *synopsis, const char *reason, ...) __attribute__((format(printf, 2, 3)));

/* Print "usage: " and the synopsis forms (a NULL-terminated array, each
 * "cmd args...") to f, one form after another under the first, each
 * wrapped to 80 columns with its continuation lines indented past the
 * command name, like the SYNOPSIS of the man page; breaks fall between
 * bracketed groups where they can. */
void cli_print_usage(FILE *f, const char *const *forms);

/* Print "prog VERSION" to stdout and exit 0 (1 if stdout fails). */
_Noreturn void cli_version(void);

/* s made safe to print on one line (dh_stat_safe: bytes other than
 * printable ASCII, and the backslash, as \xNN, cut with "..." to fit cap
 * bytes, cap >= 8), "''" for an empty string. Returns buf. */
const char *cli_safe(const char *s, char *buf, size_t cap);

/* Strict parsers: no sign, no trailing junk, no overflow. Return 0 or -EINVAL/-ERANGE. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Sizes: a number with optional K, M, G suffix (powers of 1024). */
int cli_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Octal digits only (e.g. "0640"), at most max. */
int cli_parse_octal(const char *s, uint64_t max, uint64_t *out);
/* Durations: a number (decimals allowed: "1.5s") with ms, s (default), m
 * suffix; also "inf" -> -1. Result in ns. */
int cli_parse_duration(const char *s, int64_t *out_ns);

/* Option values: a bad one is a usage error ("--opt ARG: invalid number",
 * "... out of range (min..max)", "... invalid duration"), exit 2.  opt is
 * the long option without its dashes; size selects cli_parse_size. */
uint64_t cli_opt_number(const char *opt, const char *arg, int size, uint64_t min, uint64_t max);
int64_t cli_opt_duration(const char *opt, const char *arg);

/*
 * The geometry options of a new channel, shared by dh-create and
 * dh-write --create: a command puts these codes in its struct option
 * table and hands every getopt_long result to cli_config_option first.
 */
enum cli_config_opt {
	CLI_OPT_CHECKSUM = 1024, CLI_OPT_EVICT, CLI_OPT_MAX_READERS, CLI_OPT_META_SIZE, CLI_OPT_MODE,
	CLI_OPT_POLICY, CLI_OPT_SLOT_SIZE, CLI_OPT_SLOTS
};

struct cli_config {
	struct dh_config cfg;      /* dh_config_init defaults, then the options */
	int64_t evict_ns;          /* --evict-after as parsed (-1: inf) */
	int any;                   /* some geometry option was given */
	int checksum, evict, slot_size;    /* ... and which of these */
};

void cli_config_init(struct cli_config *c);

/* "latest, ring, sync, queue" (checksums: the kinds --checksum takes),
 * from the library's tables, for errors and --help.  Returns buf. */
const char *cli_choices(int checksums, char *buf, size_t cap);

/* 1 if opt is a CLI_OPT_* code (arg stored in c; a bad value is a usage
 * error, exit 2), 0 if it is not a geometry option. */
int cli_config_option(int opt, const char *arg, struct cli_config *c);

/* After parsing: --evict-after only with --policy sync (usage error);
 * with c->cfg.schema set, parse it (cli_schema_parse) and make the slot
 * size the record size unless --slot-size was given, which must hold a
 * record (usage errors). */
void cli_config_finish(struct cli_config *c);

/*
 * Record schemas (dh_schema.h).  cli_schema_parse: SPEC of --schema,
 * malloc'd; a bad spec is a usage error ("--schema: syntax error at byte
 * N of the spec"), exit 2.  cli_channel_schema: the schema of an open
 * channel, malloc'd, or NULL if it has none (exit 1 on failure).
 * cli_schema_mismatch: after a -DH_ESCHEMA refusal, print "NAME: schema
 * mismatch: channel has HASH (CANONICAL), expected HASH (CANONICAL)"
 * ("channel has no schema" for a channel without) and exit 1.
 */
struct dh_schema *cli_schema_parse(const char *spec);
struct dh_schema *cli_channel_schema(struct dh_block *b, const char *name);
_Noreturn void cli_schema_mismatch(const char *name, const struct dh_schema *want);

/* Full write with EINTR and short counts handled: 0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t len);
/* Read until len bytes or EOF: returns bytes read, or -errno. */
ssize_t cli_read_full(int fd, void *buf, size_t len);

/* Flush and close stdout at exit; on failure print "prog: write error: ..."
 * (nothing for EPIPE: the consumer went away) and return 1, else 0. */
int cli_close_stdout(void);

/* Termination signals (INT, TERM, HUP, PIPE when asked): a handler without
 * SA_RESTART records the signal so blocking calls return EINTR.  After
 * cleanup, cli_reraise() re-raises it with the default disposition. */
void cli_catch_signals(int catch_pipe);
extern volatile sig_atomic_t cli_signal; /* 0 or the signal caught */
/* Raised by the handlers of cli_catch_signals: give it to every libdh
 * handle (dh_writer_set_cancel, dh_reader_set_cancel). */
extern struct dh_cancel cli_cancel;
/* Readable once a caught signal arrived (-1 if none could be made): poll it
 * beside any descriptor a command blocks on. */
int cli_signal_fd(void);
void cli_reraise(void);

/*
 * Trust (dh(7) SECURITY): dh-read and dh-write use a channel only when its
 * segment file belongs to the caller's effective uid or root, unless
 * --owner USER (default $DH_OWNER) names the one owner to require instead.
 * cli_owner_set parses USER (name or number; unknown is a usage error with
 * synopsis). cli_owner_env applies $DH_OWNER when no --owner was given.
 * cli_owner_precheck opens name read-only, without attaching, and dies
 * (exit 1) if its owner is not trusted; a channel it cannot open passes (the
 * real open reports why). cli_owner_enforce checks an open channel and, if
 * untrusted, calls undo (may be NULL) with arg, then dies (exit 1).
 */
struct cli_owner {
	int set;                   /* --owner or $DH_OWNER given */
	uid_t uid;
};

void cli_owner_set(struct cli_owner *o, const char *user, const char *synopsis);
void cli_owner_env(struct cli_owner *o, const char *synopsis);
void cli_owner_precheck(const struct cli_owner *o, const char *name);
void cli_owner_enforce(const struct cli_owner *o, const char *name, struct dh_block *b,
		       void (*undo)(void *), void *arg);

/*
 * SIGBUS from a mapping of a channel (a segment truncated underneath).
 * cli_guard_mapping(channel): from then on a fault prints "prog: channel:
 * segment truncated underneath (bus error)" and exits 1.
 * To recover instead, call cli_bus_catch() once, then around the accesses:
 *	if (sigsetjmp(cli_bus_env, 1)) { ... it faulted, now disarmed ... }
 *	cli_bus_armed = 1; ... cli_bus_armed = 0;
 * A fault while armed jumps back; unarmed and unguarded, SIGBUS kills as
 * by default.  (sigsetjmp must run in the caller's frame: no wrapper.)
 */
void cli_guard_mapping(const char *channel);
void cli_bus_catch(void);
extern sigjmp_buf cli_bus_env;
extern volatile sig_atomic_t cli_bus_armed;

/* The tail of every getopt_long switch (optstring starting with ':',
 * opterr = 0): c is ':' for a missing argument, else an unknown option.
 * Prints the reason and the usage line, exit 2. */
_Noreturn void cli_bad_option(const char *synopsis, int c, char **argv);

/* The framing options of dh-read and dh-write select *mode and *csv; a
 * second, different one is a usage error "FAMILY exclude each other" (family
 * lists the command's framing options).  *mode starts at DH_FRAME_RAW, which
 * no option selects. */
void cli_framing(enum dh_frame_mode *mode, int *csv, enum dh_frame_mode m, int want_csv, const char *synopsis,
		 const char *family);

/* --key FILE: load the MAC key into key (DH_KEY_BYTES) or die with status
 * ("prog: FILE: reason"). */
void cli_key_load(const char *path, uint8_t *key, int status);

/* A key selects the keyed MAC: --key with --checksum is a usage error. */
void cli_config_key_conflict(const struct cli_config *c);

#endif
