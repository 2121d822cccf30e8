/* validate_print.c: dh-validate's report of a check, as text or JSON (dh-json(5)). See LICENSE. */
#include <stdio.h>

#include <jansson.h>

#include "validate_print.h"

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
int
validate_report_error(const struct validate_out *o, const char *name, int status, const char *msg)
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

void
validate_report(const struct validate_out *o, const char *name, const struct dh_report *rep, const char *status, int ret)
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
