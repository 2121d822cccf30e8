/* dh-validate: check channels' integrity and safely reclaim what dead processes held. See LICENSE. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char synopsis[] =
	"dh-validate [--repair] [--force] [--json] [--quiet] [--key FILE] NAME ... | --all";

/* A live reader that holds the writer back is stalled after this long. */
#define STALL_NS 10000000000ull

enum { OPT_ALL = 256, OPT_FORCE, OPT_JSON, OPT_KEY, OPT_REPAIR };

static const struct option longopts[] = {
	{ "all", no_argument, NULL, OPT_ALL },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "help", no_argument, NULL, 'h' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "quiet", no_argument, NULL, 'q' },
	{ "repair", no_argument, NULL, OPT_REPAIR },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

struct opts {
	int all, force, json, quiet, repair;
	const char *keyfile;
	int has_key;
	uint8_t key[DH_KEY_BYTES];
};

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

static void
on_bus(int sig)
{
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static _Noreturn void
help(void)
{
	cli_print_usage(stdout, (const char *const[]){ synopsis, NULL });
	putchar('\n');
	printf("Check the header, geometry, slot descriptors, participant table and the\n"
	       "checksum of every committed message of each channel NAME.\n\n"
	       "  --repair      reclaim what dead processes held, publish a message a dead\n"
	       "                writer completed, quarantine messages failing their check\n"
	       "  --force       with --repair: also cut loose live readers stalling the writer\n"
	       "  --json        one JSON object per channel\n"
	       "  -q, --quiet   print only problems and repairs (for cron)\n"
	       "  --key FILE    MAC key file: verify the MACs of keyed channels\n"
	       "  --all         every channel in /dev/shm\n"
	       "  -h, --help    print this help and exit\n"
	       "  -V, --version print the version and exit\n\n"
	       "Exit status: 0 valid (or all repaired), 1 problems remain, 2 cannot check.\n");
	exit(cli_close_stdout());
}

static int
is_problem(enum dh_finding_action a)
{
	return a == DH_ACT_REPAIRABLE || a == DH_ACT_NEEDS_FORCE || a == DH_ACT_UNREPAIRABLE;
}

static json_t *
ju64(uint64_t v)
{
	return v > INT64_MAX ? json_null() : json_integer((json_int_t)v);
}

static json_t *
finding_json(const struct dh_finding *f)
{
	char buf[700];
	json_t *o = json_object();

	json_object_set_new(o, "kind", json_string(dh_finding_name(f->kind)));
	json_object_set_new(o, "action", json_string(dh_action_name(f->action)));
	json_object_set_new(o, "problem", json_boolean(is_problem(f->action)));
	json_object_set_new(o, "index", f->index < 0 ? json_null() : json_integer(f->index));
	json_object_set_new(o, "pid", f->pid <= 0 ? json_null() : json_integer(f->pid));
	json_object_set_new(o, "seq", f->seq == UINT64_MAX ? json_null() : ju64(f->seq));
	json_object_set_new(o, "slot", f->slot == UINT32_MAX ? json_null() : json_integer(f->slot));
	json_object_set_new(o, "age_ns", ju64(f->age_ns));
	json_object_set_new(o, "detail", json_string(cli_safe(f->detail, buf, sizeof buf)));
	return o;
}

/* Report a channel we could not check (2) or whose header is corrupt (1). */
static int
report_error(const struct opts *o, const char *name, int status, const char *msg)
{
	if (o->json) {
		json_t *j = json_object();
		json_object_set_new(j, "channel", json_string(name));
		json_object_set_new(j, "status", json_string(status == EXIT_FAIL ? "corrupt" : "error"));
		json_object_set_new(j, "exit", json_integer(status));
		json_object_set_new(j, "error", json_string(msg));
		json_object_set_new(j, "checked", json_integer(0));
		json_object_set_new(j, "problems", json_integer(status == EXIT_FAIL));
		json_object_set_new(j, "repaired", json_integer(0));
		json_object_set_new(j, "forced", json_integer(0));
		json_object_set_new(j, "findings", json_array());
		json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(j);
	}
	if (status == EXIT_FAIL) {
		if (!o->json)
			printf("%s: corrupt header: %s; no repair is provably safe\n", name, msg);
	} else {
		cli_warn("%s: %s", name, msg);
	}
	return status;
}

static void
report(const struct opts *o, const char *name, const struct dh_report *rep, const char *status, int ret)
{
	int repaired = 0, forced = 0;
	char buf[700];

	for (size_t i = 0; i < rep->n; i++) {
		repaired += rep->f[i].action == DH_ACT_REPAIRED;
		forced += rep->f[i].action == DH_ACT_FORCED;
	}
	if (o->json) {
		json_t *j, *fs;
		if (o->quiet && ret == EXIT_OK && !repaired && !forced)
			return;
		j = json_object();
		fs = json_array();
		json_object_set_new(j, "channel", json_string(name));
		json_object_set_new(j, "status", json_string(status));
		json_object_set_new(j, "exit", json_integer(ret));
		json_object_set_new(j, "error", json_null());
		json_object_set_new(j, "checked", ju64(rep->slots_checked));
		json_object_set_new(j, "problems", json_integer(rep->problems));
		json_object_set_new(j, "repaired", json_integer(repaired));
		json_object_set_new(j, "forced", json_integer(forced));
		for (size_t i = 0; i < rep->n; i++)
			json_array_append_new(fs, finding_json(&rep->f[i]));
		json_object_set_new(j, "findings", fs);
		json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(j);
		return;
	}
	for (size_t i = 0; i < rep->n; i++) {
		const struct dh_finding *f = &rep->f[i];
		if (o->quiet && f->action == DH_ACT_NONE)
			continue;
		printf("%s: %s: %s", name, dh_finding_name(f->kind), cli_safe(f->detail, buf, sizeof buf));
		if (f->action == DH_ACT_FORCED)
			printf(" [forced: --force cut it loose although it is alive]\n");
		else if (f->action != DH_ACT_NONE)
			printf(" [%s]\n", dh_action_name(f->action));
		else
			putchar('\n');
	}
	if (rep->problems)
		printf("%s: %d problem%s remain%s%s\n", name, rep->problems, rep->problems == 1 ? "" : "s",
		       rep->problems == 1 ? "s" : "",
		       o->repair ? "" : " (dh-validate --repair fixes what is safe)");
	else if (forced)
		printf("%s: repaired %d, forced %d, valid\n", name, repaired, forced);
	else if (repaired)
		printf("%s: repaired %d, valid\n", name, repaired);
	else if (!o->quiet)
		printf("%s: valid, %llu committed messages checked\n", name, (unsigned long long)rep->slots_checked);
}

/* Check (and repair) one channel; returns its exit status. */
static int
validate(const struct opts *o, const char *name, int listed)
{
	static struct dh_block *b;   /* static: survives a SIGBUS jump */
	static struct dh_report rep;
	char msg[256];
	int rc, ret;
	const int flags = o->repair ? DH_CHECK_REPAIR | (o->force ? DH_CHECK_FORCE : 0) : 0;

	b = NULL;
	memset(&rep, 0, sizeof rep);
	if (dh_name_check(name) < 0)
		return report_error(o, name, EXIT_USAGE, "invalid channel name");
	if (sigsetjmp(bus_jmp, 1)) {
		bus_armed = 0;
		/* the mapping is unusable: leak it rather than touch it again */
		return report_error(o, name, EXIT_FAIL, "segment truncated while being checked");
	}
	bus_armed = 1;
	rc = dh_block_open(name, o->repair ? 0 : DH_OPEN_RDONLY, &b);
	if (rc == -ENOENT && listed) {
		bus_armed = 0;
		return EXIT_OK; /* removed since we listed it */
	}
	if (rc < 0) {
		bus_armed = 0;
		if (rc == -ENOENT)
			return report_error(o, name, EXIT_USAGE, "no such channel");
		return report_error(o, name, rc == -DH_ECORRUPT || rc == -DH_EVERSION ? EXIT_FAIL : EXIT_USAGE,
				    dh_strerror(rc));
	}
	if (o->has_key) {
		rc = dh_block_set_key(b, o->key);
		if (rc == -DH_ENOTKEYED) {
			if (!listed) /* --all goes across keyed and unkeyed channels */
				cli_warn("%s: channel has no key: --key ignored", name);
		} else if (rc == -DH_EKEY && listed) {
			/* --all: other channels have other keys; check them without */
			cli_warn("%s: not this channel's key: MACs not verified", name);
		} else if (rc < 0) {
			bus_armed = 0;
			dh_block_close(b);
			return report_error(o, name, EXIT_USAGE, dh_strerror(rc));
		}
	}
	rc = dh_check_run(b, flags, STALL_NS, &rep);
	bus_armed = 0;
	dh_block_close(b);
	if (rc < 0) {
		dh_report_free(&rep);
		snprintf(msg, sizeof msg, "check: %s", dh_strerror(rc));
		return report_error(o, name, EXIT_USAGE, msg);
	}
	ret = rep.problems ? EXIT_FAIL : EXIT_OK;
	{
		const char *status = "valid";
		for (size_t i = 0; i < rep.n; i++)
			if (rep.f[i].action == DH_ACT_REPAIRED || rep.f[i].action == DH_ACT_FORCED)
				status = "repaired";
		if (rep.problems)
			status = "problems";
		report(o, name, &rep, status, ret);
	}
	for (size_t i = 0; i < rep.n && !o->json; i++)
		if (rep.f[i].kind == DH_FIND_KEY_UNVERIFIED)
			cli_warn("%s: keyed channel: MACs not verified (use --key FILE)", name);
	dh_report_free(&rep);
	return ret;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every dh.* regular file of the channel directory, sorted; NULL-terminated,
 * owned by the caller. Anything else planted there is no channel and is
 * never opened. */
static char **
list_all(void)
{
	const char *dir = dh_block_dir();
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t n = 0, cap = 0;

	if (!d)
		cli_diec(EXIT_USAGE, -errno, "%s", dir);
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "dh.", 3) != 0 || e->d_name[3] == '\0' || !cli_dirent_regular(d, e))
			continue;
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 32;
			if (!(v = realloc(v, cap * sizeof *v)))
				cli_diec(EXIT_USAGE, -ENOMEM, "%s", dir);
		}
		if (!(v[n++] = strdup(e->d_name + 3)))
			cli_diec(EXIT_USAGE, -ENOMEM, "%s", dir);
	}
	closedir(d);
	if (!v && !(v = calloc(1, sizeof *v)))
		cli_diec(EXIT_USAGE, -ENOMEM, "%s", dir);
	qsort(v, n, sizeof *v, cmp_str);
	v[n] = NULL;
	return v;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct sigaction sa;
	char **names, buf[64];
	int c, rc, ret = EXIT_OK;

	cli_init(argc, argv);
	memset(&o, 0, sizeof o);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hqV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ALL:
			o.all = 1;
			break;
		case OPT_FORCE:
			o.force = 1;
			break;
		case 'h':
			help();
		case OPT_JSON:
			o.json = 1;
			break;
		case OPT_KEY:
			o.keyfile = optarg;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case OPT_REPAIR:
			o.repair = 1;
			break;
		case 'V':
			cli_version();
		case ':':
			cli_usage(synopsis, "option %s needs an argument", argv[optind - 1]);
		default:
			if (optopt != 0)
				cli_usage(synopsis, "unknown option -%c", optopt);
			cli_usage(synopsis, "unknown option %s", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (o.all && argc > 0)
		cli_usage(synopsis, "--all takes no channel names");
	if (!o.all && argc == 0)
		cli_usage(synopsis, "missing channel name");
	if (o.force && !o.repair)
		cli_usage(synopsis, "--force only with --repair");
	for (int i = 0; i < argc; i++)
		if (dh_name_check(argv[i]) < 0)
			cli_die(EXIT_USAGE, "%s: invalid channel name", cli_safe(argv[i], buf, sizeof buf));
	if (o.keyfile) {
		if ((rc = dh_key_load(o.keyfile, o.key)) < 0)
			cli_diec(EXIT_USAGE, rc, "%s", o.keyfile);
		o.has_key = 1;
	}

	/* A segment truncated under us faults on access: report it, never crash. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_bus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);

	names = o.all ? list_all() : argv;
	for (int i = 0; names[i]; i++) {
		rc = validate(&o, names[i], o.all);
		if (rc > ret)
			ret = rc;
	}
	if (o.all) {
		for (int i = 0; names[i]; i++)
			free(names[i]);
		free(names);
	}
	dh_key_wipe(o.key);
	if (cli_close_stdout() != 0)
		return EXIT_USAGE;
	return ret;
}
