# dh.bash: bash completion for the dh-* commands. See LICENSE.
#
# One function, registered for every command: options per command, values
# of the options that take one (policies, checksums, files, directories),
# and channel names from /dev/shm/dh.* for NAME operands.  Installed once
# per command name so that bash-completion's lazy loading finds it.
# shellcheck shell=bash

# _dh_words LIST: complete $cur from the words of LIST.
_dh_words() {
	mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur")
}

# _dh_channels: complete $cur from the channels in /dev/shm ($DH_SHM_DIR
# when set): regular files only, like the commands' own listings.
_dh_channels() {
	local f dir=${DH_SHM_DIR:-/dev/shm} names=()
	for f in "$dir"/dh.*; do
		if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
		names+=("${f#"$dir"/dh.}")
	done
	_dh_words "${names[*]}"
}

# _dh_choices KIND: complete $cur from the names of --KIND (policy,
# checksum) that dh-create --help lists from the library's table, so that
# none is written here: asked of the dh-create beside the command being
# completed, else of the one on $PATH; none installed, no names.
_dh_choices() {
	local create=dh-create
	case ${COMP_WORDS[0]} in */*) [ -x "${COMP_WORDS[0]%/*}/dh-create" ] && create=${COMP_WORDS[0]%/*}/dh-create ;; esac
	_dh_words "$("$create" --help 2>/dev/null | sed -n "s/^ *--$1 [A-Z]* *one of \(.*\) (default .*/\1/p" | tr -d ,)"
}

_dh_files() {
	compopt -o filenames 2>/dev/null || : # only inside a completion
	mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}

_dh_dirs() {
	compopt -o filenames 2>/dev/null || : # only inside a completion
	mapfile -t COMPREPLY < <(compgen -d -- "$cur")
}

# _dh_value CMD OPTION: complete $cur as the value of OPTION.
_dh_value() {
	case $1:$2 in
	*:--policy) _dh_choices policy ;;
	*:--checksum) _dh_choices checksum ;;
	*:--from) _dh_words "oldest latest now" ;;
	*:--progress) _dh_words "auto log" ;;
	dh-stat:--serve) _dh_words "127.0.0.1:9464 [::1]:9464 0.0.0.0:9464" ;;
	*:--mode) _dh_words "0600 0660 0666" ;;
	*:--evict-after | *:--timeout | *:--wait-channel) _dh_words "inf" ;;
	*:--bind | *:-b | *:--events | *:-e | *:--broker | *:--serve | *:--connect) _dh_words "ipc:// tcp://" ;;
	dh-broker:--keygen | *:--curve | *:-c) _dh_dirs ;;
	*:--key | *:--meta | *:--keygen | *:--broker-key | *:--client-key | *:--remote-key) _dh_files ;;
	*:--owner) mapfile -t COMPREPLY < <(compgen -u -- "$cur") ;;
	*) COMPREPLY=() ;; # numbers, sizes, durations, labels, specs
	esac
}

_dh() {
	local cur prev cmd opts argopts opt
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
	cmd=${COMP_WORDS[0]##*/}

	# options and, among them, those that take a value
	case $cmd in
	dh-broker)
		opts="--bind --events --curve --heartbeat --keygen --verbose --help --version -b -e -c -v -h -V"
		argopts="--bind --events --curve --heartbeat --keygen -b -e -c"
		;;
	dh-create)
		opts="--slots --slot-size --policy --checksum --key --schema --meta-size --max-readers
			--mode --evict-after --force --remove --keygen --help --version -h -V"
		argopts="--slots --slot-size --policy --checksum --key --schema --meta-size --max-readers
			--mode --evict-after --keygen"
		;;
	dh-diagnose)
		opts="--json --slot --key --stall-after --help --version -h -V"
		argopts="--slot --key --stall-after"
		;;
	dh-read)
		opts="--follow --count --from --no-wait --lines --null --framed --json --csv --timeout --key
			--schema --strict --name --owner --meta --wait-channel --progress --progress-interval --broker
			--broker-key --client-key --serve --connect --curve --quiet --help --version -q -h -V"
		argopts="--count --from --timeout --key --schema --name --owner --wait-channel --progress-interval
			--broker --broker-key --client-key --serve --connect --curve"
		;;
	dh-stat)
		opts="--json --prometheus --watch --all-fields --filter --serve --broker --events --broker-key
			--client-key --help --version -h -V"
		argopts="--watch --filter --serve --broker --broker-key --client-key"
		;;
	dh-validate)
		opts="--repair --force --json --quiet --key --all --help --version -q -h -V"
		argopts="--key"
		;;
	dh-write)
		opts="--create --slots --slot-size --policy --checksum --meta-size --max-readers --mode
			--evict-after --key --schema --lines --null --framed --record-size --csv --timeout
			--wait-readers --no-eos --progress --progress-interval --meta --name --owner --broker
			--broker-key --client-key --connect --curve --remote-key --help --version -h -V"
		argopts="--slots --slot-size --policy --checksum --meta-size --max-readers --mode
			--evict-after --key --schema --record-size --timeout --wait-readers --progress-interval
			--meta --name --owner --broker --broker-key --client-key --connect --curve --remote-key"
		;;
	*)
		# a command this file does not know yet: its --help lists the options
		opts=$("${COMP_WORDS[0]}" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
		argopts=
		;;
	esac
	# shellcheck disable=SC2086 # word lists: splitting intended
	set -- $argopts

	# --opt=value: bash splits the word at '=' (COMP_WORDBREAKS)
	if [ "$cur" = "=" ] && [[ $prev == --* ]]; then
		cur=
		_dh_value "$cmd" "$prev"
		return
	fi
	if [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 2 ]; then
		_dh_value "$cmd" "${COMP_WORDS[COMP_CWORD - 2]}"
		return
	fi
	for opt; do
		if [ "$prev" = "$opt" ]; then
			_dh_value "$cmd" "$prev"
			return
		fi
	done

	if [[ $cur == -* ]]; then
		_dh_words "$opts"
		return
	fi
	[ "$cmd" = dh-broker ] || _dh_channels # dh-broker takes no operands
}

complete -F _dh dh-broker dh-create dh-diagnose dh-read dh-stat dh-validate dh-write
