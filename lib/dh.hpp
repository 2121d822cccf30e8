/* dh.hpp: C++17 RAII layer over libdh, header-only. See dh-cpp(3) and LICENSE.
 *
 * Handles own what they open and are move-only; a moved-from or closed
 * handle is empty and every operation on it throws dh::error (EBADF).
 * Failures throw dh::error, a std::system_error in dh::category(); no
 * destructor throws.  Like the C handles, one thread per handle.
 *
 * Byte views: C++17 has no std::span, so dh::bytes is a small read-only
 * (pointer, length) view, built implicitly from any contiguous container of
 * trivially copyable elements (std::string, std::string_view, std::vector,
 * std::array, and std::span under C++20, to which it also converts) or from
 * (const void *, size_t).  It is not built from raw arrays or pointers: a
 * string literal would silently carry its NUL, a pointer has no length.
 */
#ifndef DH_HPP
#define DH_HPP

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <sys/types.h>
#if __cplusplus >= 202002L && __has_include(<span>)
#include <span>
#endif

extern "C" {
#include "dh_error.h"
#include "dh_block.h"
#include "dh_ring.h"
#include "dh_key.h"
}

namespace dh {

/* ---- errors ------------------------------------------------------------- */

/* The conditions libdh has beyond errno (DH_E* of dh_error.h). */
enum class errc {
	corrupt = DH_ECORRUPT,
	foreign = DH_EFOREIGN,
	version = DH_EVERSION,
	checksum = DH_ECHECKSUM,
	schema = DH_ESCHEMA,
	writer_dead = DH_EWRITERDEAD,
	evicted = DH_EEVICTED,
	key = DH_EKEY,
	too_big = DH_ETOOBIG,
	unsupported = DH_EUNSUPPORTED,
	key_needed = DH_EKEYNEEDED,
	not_keyed = DH_ENOTKEYED,
	key_mode = DH_EKEYMODE,
	key_size = DH_EKEYSIZE,
};

namespace detail {
class category_impl final : public std::error_category {
public:
	const char *name() const noexcept override { return "dh"; }
	std::string message(int ev) const override { return dh_strerror(ev); }
	/* errno values compare equal to std::errc (code == std::errc::timed_out);
	 * DH_E* values only to dh::errc. */
	std::error_condition default_error_condition(int ev) const noexcept override
	{
		if (ev > 0 && ev < DH_EBASE)
			return std::error_condition(ev, std::generic_category());
		return std::error_condition(ev, *this);
	}
};
} // namespace detail

/* Every code a dh::error carries: a positive errno value or DH_E* value,
 * the absolute value of what libdh returned. */
inline const std::error_category &
category() noexcept
{
	static const detail::category_impl c;
	return c;
}

inline std::error_code
make_error_code(errc e) noexcept
{
	return std::error_code(static_cast<int>(e), category());
}

inline std::error_condition
make_error_condition(errc e) noexcept
{
	return std::error_condition(static_cast<int>(e), category());
}

/* A timeout: the wait ran out (ETIMEDOUT), or with a zero timeout nothing
 * was there (EAGAIN).  Never end-of-stream, which is not an error. */
inline bool
is_timeout(const std::error_code &ec) noexcept
{
	return ec == std::errc::timed_out || ec == std::errc::resource_unavailable_try_again;
}

class error : public std::system_error {
public:
	/* code: as returned by libdh (negative) or its absolute value. */
	error(int code, const std::string &what)
	    : std::system_error(code < 0 ? -code : code, category(), what) {}
	error(std::error_code ec, const std::string &what) : std::system_error(ec, what) {}
	bool timed_out() const noexcept { return is_timeout(code()); }
};

namespace detail {
inline void
check(int rc, const std::string &what)
{
	if (rc < 0)
		throw error(rc, what);
}
} // namespace detail

/* ---- timeouts ----------------------------------------------------------- */

/* Any std::chrono duration converts (1s, 250ms); negative waits forever. */
using duration = std::chrono::nanoseconds;
inline constexpr duration forever{-1};
inline constexpr duration no_wait{0};

namespace detail {
inline std::int64_t
ns(duration d) noexcept
{
	return d.count() < 0 ? -1 : static_cast<std::int64_t>(d.count());
}

template <class T>
constexpr void
record_type_check() noexcept
{
	static_assert(std::is_trivially_copyable_v<T>, "dh: record type must be trivially copyable");
	static_assert(!std::is_pointer_v<T>, "dh: a pointer means nothing in another process");
}
} // namespace detail

/* ---- byte views --------------------------------------------------------- */

class bytes {
	template <class C, class = void>
	struct contiguous : std::false_type {};
	template <class C>
	struct contiguous<C, std::void_t<decltype(std::data(std::declval<const C &>())),
					 decltype(std::size(std::declval<const C &>()))>>
	    : std::bool_constant<!std::is_array_v<C> &&
				 std::is_trivially_copyable_v<std::remove_cv_t<std::remove_pointer_t<
				     decltype(std::data(std::declval<const C &>()))>>>> {};

public:
	constexpr bytes() noexcept = default;
	bytes(const void *p, std::size_t n) noexcept : p_(static_cast<const std::byte *>(p)), n_(n) {}
	template <class C, std::enable_if_t<contiguous<C>::value && !std::is_same_v<C, bytes>, int> = 0>
	bytes(const C &c) noexcept // NOLINT: implicit on purpose, like std::span
	    : p_(reinterpret_cast<const std::byte *>(std::data(c))),
	      n_(std::size(c) * sizeof(*std::data(c))) {}

	const std::byte *data() const noexcept { return p_; }
	std::size_t size() const noexcept { return n_; }
	bool empty() const noexcept { return n_ == 0; }
	const std::byte *begin() const noexcept { return p_; }
	const std::byte *end() const noexcept { return p_ + n_; }
	std::byte operator[](std::size_t i) const noexcept { return p_[i]; }
	/* The bytes as text (no encoding implied). */
	std::string_view str() const noexcept
	{
		return std::string_view(reinterpret_cast<const char *>(p_), n_);
	}
#if __cplusplus >= 202002L && defined(__cpp_lib_span)
	operator std::span<const std::byte>() const noexcept { return {p_, n_}; }
#endif

private:
	const std::byte *p_ = nullptr;
	std::size_t n_ = 0;
};

/* ---- keys, policies, channel creation ----------------------------------- */

/* A MAC key (DH_KEY_BYTES), wiped when destroyed. */
class key {
public:
	explicit key(const std::uint8_t (&k)[DH_KEY_BYTES]) noexcept { std::memcpy(k_.data(), k, k_.size()); }
	key(const key &) = default;
	key &operator=(const key &) = default;
	~key() { dh_key_wipe(k_.data()); }

	/* A key file as dh_key_load(3) wants it (regular, ours, mode 0600). */
	static key load(const std::string &path)
	{
		key k;
		detail::check(dh_key_load(path.c_str(), k.k_.data()), "dh::key::load: " + path);
		return k;
	}
	/* Create path holding a new random key. */
	static void generate(const std::string &path)
	{
		detail::check(dh_key_generate(path.c_str()), "dh::key::generate: " + path);
	}
	const std::uint8_t *data() const noexcept { return k_.data(); }

private:
	key() noexcept = default;
	std::array<std::uint8_t, DH_KEY_BYTES> k_{};
};

enum class policy { latest = DH_POLICY_LATEST, ring = DH_POLICY_RING, sync = DH_POLICY_SYNC, queue = DH_POLICY_QUEUE };
enum class checksum { none = DH_CHECKSUM_NONE, xxh3 = DH_CHECKSUM_XXH3, blake2b = DH_CHECKSUM_BLAKE2B };

/* Creation parameters, defaults as dh_config_init(3) (and dh-create(1)). */
class config {
public:
	config() noexcept { dh_config_init(&c_); }
	config &slots(std::uint32_t n) noexcept { c_.slots = n; return *this; }
	config &slot_size(std::uint32_t n) noexcept { c_.slot_size = n; return *this; }
	config &meta_size(std::uint32_t n) noexcept { c_.meta_size = n; return *this; }
	config &max_readers(std::uint32_t n) noexcept { c_.max_readers = n; return *this; }
	config &policy(dh::policy p) noexcept { c_.policy = static_cast<dh_policy>(p); return *this; }
	config &checksum(dh::checksum c) noexcept { c_.checksum = static_cast<dh_checksum>(c); return *this; }
	config &mode(unsigned m) noexcept { c_.mode = m; return *this; }
	config &evict_after(duration d) noexcept
	{
		c_.evict_after_ns = d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
		return *this;
	}
	config &key(const dh::key &k) { key_ = k; return *this; }
	config &schema(std::string spec) { schema_ = std::move(spec); return *this; }

	/* The C configuration; valid while *this lives unchanged. */
	dh_config native() const noexcept
	{
		dh_config c = c_;
		c.key = key_ ? key_->data() : nullptr;
		c.schema = schema_ ? schema_->c_str() : nullptr;
		return c;
	}

private:
	dh_config c_;
	std::optional<::dh::key> key_;
	std::optional<std::string> schema_;
};

/* Create channel name (dh_block_create(3)): throws, e.g. EEXIST. */
inline void
create(const std::string &name, const config &cfg = config())
{
	dh_config c = cfg.native();
	detail::check(dh_block_create(name.c_str(), &c), "dh::create: " + name);
}

/* Remove channel name; false if there was none.  Unless force, throws
 * EBUSY while a participant is alive. */
inline bool
remove(const std::string &name, bool force = false)
{
	int rc = dh_block_unlink(name.c_str(), force, nullptr);
	if (rc == -ENOENT)
		return false;
	detail::check(rc, "dh::remove: " + name);
	return true;
}

/* ---- writer ------------------------------------------------------------- */

class writer_options {
public:
	writer_options &label(std::string s) { label_ = std::move(s); return *this; }
	writer_options &key(const dh::key &k) { key_ = k; return *this; }
	writer_options &schema(std::string spec) { schema_ = std::move(spec); return *this; }

private:
	friend class writer;
	std::string label_;
	std::optional<::dh::key> key_;
	std::optional<std::string> schema_;
};

class writer;

/*
 * A reserved slot.  Nothing is visible until commit(n); the destructor
 * aborts a slot not committed (an exception leaving the scope leaves no
 * message).  A writer holds at most one open transaction; closing the
 * writer first makes it empty (and aborts the slot).
 */
class transaction {
public:
	transaction() noexcept = default;
	transaction(transaction &&o) noexcept { take(o); }
	transaction &operator=(transaction &&o) noexcept
	{
		if (this != &o) {
			abort();
			take(o);
		}
		return *this;
	}
	transaction(const transaction &) = delete;
	transaction &operator=(const transaction &) = delete;
	~transaction() { abort(); }

	/* Open: reserved, neither committed nor aborted. */
	explicit operator bool() const noexcept { return w_ != nullptr; }
	std::byte *data() const noexcept { return buf_; }
	std::size_t capacity() const noexcept { return cap_; }
	/* Publish the first n bytes; the transaction is then closed.  On
	 * failure (too_big, schema) it stays open. */
	inline void commit(std::size_t n);
	/* Drop the slot; nothing becomes visible.  No-op when not open. */
	inline void abort() noexcept;

private:
	friend class writer;
	inline void take(transaction &o) noexcept;
	inline void detach() noexcept;
	writer *w_ = nullptr;
	std::byte *buf_ = nullptr;
	std::size_t cap_ = 0;
};

/* A transaction holding one T constructed (value-initialised) in the slot:
 * fill it through * or ->, then commit(). */
template <class T>
class record_transaction {
public:
	record_transaction() noexcept = default;
	T &operator*() const noexcept { return *p_; }
	T *operator->() const noexcept { return p_; }
	explicit operator bool() const noexcept { return static_cast<bool>(tx_); }
	void commit() { tx_.commit(sizeof(T)); }
	void abort() noexcept { tx_.abort(); }

private:
	friend class writer;
	record_transaction(transaction tx, T *p) noexcept : tx_(std::move(tx)), p_(p) {}
	transaction tx_;
	T *p_ = nullptr;
};

class writer {
public:
	writer() noexcept = default;
	/* Open the single writer of channel name (dh_writer_open_opts(3)):
	 * throws EBUSY while another writer lives, errc::key_needed, errc::key,
	 * errc::not_keyed, errc::schema, ENOENT... */
	explicit writer(const std::string &name, const writer_options &o = writer_options()) : name_(name)
	{
		dh_writer_opts c{};
		pid_t holder = 0;
		c.label = o.label_.empty() ? nullptr : o.label_.c_str();
		c.key = o.key_ ? o.key_->data() : nullptr;
		c.schema = o.schema_ ? o.schema_->c_str() : nullptr;
		int rc = dh_writer_open_opts(name.c_str(), &c, &w_, &holder);
		if (rc == -EBUSY && holder > 0)
			throw error(rc, "dh::writer: " + name + " (writer pid " + std::to_string(holder) + ")");
		detail::check(rc, "dh::writer: " + name);
		record_size_ = static_cast<std::size_t>(dh_block_schema(dh_writer_block(w_), nullptr, 0, nullptr));
	}
	writer(writer &&o) noexcept { take(o); }
	writer &operator=(writer &&o) noexcept
	{
		if (this != &o) {
			close();
			take(o);
		}
		return *this;
	}
	writer(const writer &) = delete;
	writer &operator=(const writer &) = delete;
	/* Closes without marking end-of-stream: an exception unwinding past
	 * the writer must not look like a clean end.  Call eos() for that. */
	~writer() { close(); }

	explicit operator bool() const noexcept { return w_ != nullptr; }

	void close() noexcept
	{
		if (tx_)
			std::exchange(tx_, nullptr)->detach();
		dh_writer_close(w_);
		w_ = nullptr;
	}

	/* Reserve the next slot, waiting for space up to timeout (sync, queue). */
	transaction reserve(duration timeout = forever)
	{
		dh_writer *w = get("reserve");
		void *buf = nullptr;
		std::size_t cap = 0;
		if (tx_)
			throw error(EBUSY, "dh::writer::reserve: " + name_ + ": a transaction is open");
		detail::check(dh_writer_reserve(w, &buf, &cap, detail::ns(timeout)), "dh::writer::reserve: " + name_);
		transaction tx;
		tx.w_ = this;
		tx.buf_ = static_cast<std::byte *>(buf);
		tx.cap_ = cap;
		tx_ = &tx; // moved into the caller's object: take() follows it
		return tx;
	}

	/* Reserve a slot holding one value-initialised T (in place, zero-copy). */
	template <class T>
	record_transaction<T> reserve_record(duration timeout = forever)
	{
		detail::record_type_check<T>();
		static_assert(std::is_default_constructible_v<T>, "dh: reserve_record needs a default-constructible T");
		check_record_size(sizeof(T), "reserve_record");
		transaction tx = reserve(timeout);
		if (reinterpret_cast<std::uintptr_t>(tx.data()) % alignof(T) != 0)
			throw error(EINVAL, "dh::writer::reserve_record: " + name_ + ": slot not aligned for the type");
		T *p = ::new (static_cast<void *>(tx.data())) T();
		return record_transaction<T>(std::move(tx), p);
	}

	/* One message: reserve, copy, commit. */
	void write(bytes b, duration timeout = forever)
	{
		dh_writer *w = get("write");
		if (tx_)
			throw error(EBUSY, "dh::writer::write: " + name_ + ": a transaction is open");
		detail::check(dh_writer_write(w, b.data(), b.size(), detail::ns(timeout)), "dh::writer::write: " + name_);
	}
	void write(const void *p, std::size_t n, duration timeout = forever) { write(bytes(p, n), timeout); }

	/* One record; throws errc::schema before writing anything when sizeof(T)
	 * is not the channel's record size. */
	template <class T>
	void write_record(const T &rec, duration timeout = forever)
	{
		detail::record_type_check<T>();
		check_record_size(sizeof(T), "write_record");
		write(bytes(&rec, sizeof(T)), timeout);
	}

	/* Mark end-of-stream: readers finish after what was committed. */
	void eos() { detail::check(dh_writer_eos(get("eos")), "dh::writer::eos: " + name_); }

	/* Batched publication (dh_writer_set_batch): commits become visible
	 * max at a time, at flush(), before a wait for space, at eos() and at
	 * close.  Returns the batch size in force (clamped to half the ring). */
	unsigned set_batch(unsigned max) { return dh_writer_set_batch(get("set_batch"), max); }
	void flush() { dh_writer_flush(get("flush")); }
	std::uint64_t pending() const { return dh_writer_pending(get("pending")); }

	void wait_readers(unsigned n, duration timeout = forever)
	{
		detail::check(dh_writer_wait_readers(get("wait_readers"), n, detail::ns(timeout)),
			      "dh::writer::wait_readers: " + name_);
	}

	std::uint64_t seq() const { return dh_writer_seq(get("seq")); }
	std::size_t slot_size() const { return dh_writer_slot_size(get("slot_size")); }
	/* The schema's record size, 0 if the channel has no schema. */
	std::size_t record_size() const { get("record_size"); return record_size_; }
	const std::string &name() const noexcept { return name_; }
	dh_writer *native_handle() const noexcept { return w_; }

private:
	friend class transaction;

	dh_writer *get(const char *op) const
	{
		if (!w_)
			throw error(EBADF, std::string("dh::writer::") + op + ": no channel (moved from or closed)");
		return w_;
	}

	void check_record_size(std::size_t size, const char *op) const
	{
		dh_writer *w = get(op);
		std::size_t want = record_size_ ? record_size_ : dh_writer_slot_size(w);
		if (record_size_ ? size != want : size > want)
			throw error(record_size_ ? DH_ESCHEMA : DH_ETOOBIG,
				    std::string("dh::writer::") + op + ": " + name_ + ": record of " +
					std::to_string(size) + " bytes, the channel's " +
					(record_size_ ? "records are " : "slots hold ") + std::to_string(want));
	}

	void take(writer &o) noexcept
	{
		w_ = std::exchange(o.w_, nullptr);
		tx_ = std::exchange(o.tx_, nullptr);
		record_size_ = o.record_size_;
		name_ = std::move(o.name_);
		if (tx_)
			tx_->w_ = this;
	}

	dh_writer *w_ = nullptr;
	transaction *tx_ = nullptr;
	std::size_t record_size_ = 0;
	std::string name_;
};

inline void
transaction::take(transaction &o) noexcept
{
	w_ = std::exchange(o.w_, nullptr);
	buf_ = std::exchange(o.buf_, nullptr);
	cap_ = std::exchange(o.cap_, 0);
	if (w_)
		w_->tx_ = this;
}

inline void
transaction::detach() noexcept
{
	w_ = nullptr;
	buf_ = nullptr;
	cap_ = 0;
}

inline void
transaction::commit(std::size_t n)
{
	if (!w_)
		throw error(EINVAL, "dh::transaction::commit: not open (committed, aborted or moved from)");
	detail::check(dh_writer_commit(w_->w_, n), "dh::transaction::commit: " + w_->name_);
	w_->tx_ = nullptr;
	detach();
}

inline void
transaction::abort() noexcept
{
	if (!w_)
		return;
	dh_writer_abort(w_->w_);
	w_->tx_ = nullptr;
	detach();
}

/* ---- reader ------------------------------------------------------------- */

/* Where a new reader starts; default: per policy (dh_reader_open(3)). */
enum class start {
	automatic = DH_START_DEFAULT,
	oldest = DH_START_OLDEST,
	latest = DH_START_LATEST,
	now = DH_START_NOW,
	held = DH_START_HELD, // what the channel holds now, also of a stream that ended
};

class reader_options {
public:
	reader_options &label(std::string s) { label_ = std::move(s); return *this; }
	reader_options &key(const dh::key &k) { key_ = k; return *this; }
	reader_options &schema(std::string spec) { schema_ = std::move(spec); return *this; }
	reader_options &start(dh::start s) noexcept { start_ = static_cast<dh_start>(s); return *this; }
	/* Start at sequence number seq (clamped to what the channel holds). */
	reader_options &start_seq(std::uint64_t seq) noexcept
	{
		start_ = DH_START_SEQ;
		seq_ = seq;
		return *this;
	}
	/* Never report end-of-stream or a dead writer: wait for the next writer. */
	reader_options &follow(bool on = true) noexcept { follow_ = on; return *this; }

private:
	friend class reader;
	std::string label_;
	std::optional<::dh::key> key_;
	std::optional<std::string> schema_;
	dh_start start_ = DH_START_DEFAULT;
	std::uint64_t seq_ = 0;
	bool follow_ = false;
};

/* A message as the reader delivered it.  data is valid until the next
 * call on the reader (next, the next loop iteration, release, close). */
struct message {
	bytes data;
	std::uint64_t seq = 0;
	std::uint64_t time_ns = 0; /* commit time, CLOCK_REALTIME */
	std::uint64_t lost = 0;    /* lost to a lap just before this one */

	std::size_t size() const noexcept { return data.size(); }
	std::string_view str() const noexcept { return data.str(); }
	std::chrono::system_clock::time_point time() const noexcept
	{
		return std::chrono::system_clock::time_point(
		    std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(time_ns)));
	}
	/* A copy of the payload as a T; throws errc::schema if it is not
	 * exactly sizeof(T) bytes. */
	template <class T>
	T as() const
	{
		detail::record_type_check<T>();
		if (data.size() != sizeof(T))
			throw error(DH_ESCHEMA, "dh::message::as: message of " + std::to_string(data.size()) +
						    " bytes, the type has " + std::to_string(sizeof(T)));
		/* a union so that T needs no default constructor */
		union u {
			char c;
			T t;
			u() : c() {}
		} v;
		std::memcpy(static_cast<void *>(&v.t), data.data(), sizeof(T));
		return v.t;
	}
};

class reader;

/* Messages as an input range (see reader::messages). */
class message_range {
public:
	class iterator {
	public:
		using iterator_category = std::input_iterator_tag;
		using value_type = message;
		using difference_type = std::ptrdiff_t;
		using pointer = const message *;
		using reference = const message &;

		iterator() noexcept = default;
		reference operator*() const noexcept { return *m_; }
		pointer operator->() const noexcept { return &*m_; }
		inline iterator &operator++();
		void operator++(int) { ++*this; }
		friend bool operator==(const iterator &a, const iterator &b) noexcept
		{
			return a.m_.has_value() == b.m_.has_value() && (!a.m_ || a.m_->seq == b.m_->seq);
		}
		friend bool operator!=(const iterator &a, const iterator &b) noexcept { return !(a == b); }

	private:
		friend class message_range;
		iterator(reader *r, duration t) : r_(r), t_(t) { ++*this; }
		reader *r_ = nullptr;
		duration t_{};
		std::optional<message> m_;
	};

	iterator begin() { return iterator(r_, t_); }
	iterator end() noexcept { return iterator(); }

private:
	friend class reader;
	message_range(reader *r, duration t) noexcept : r_(r), t_(t) {}
	reader *r_;
	duration t_;
};

class reader {
public:
	reader() noexcept = default;
	/* Attach a reader to channel name (dh_reader_open(3)): throws ENOSPC
	 * (table full), key and schema errors as dh::writer, ENOENT... */
	explicit reader(const std::string &name, const reader_options &o = reader_options()) : name_(name)
	{
		dh_reader_opts c{};
		c.label = o.label_.empty() ? nullptr : o.label_.c_str();
		c.start = o.start_;
		c.start_seq = o.seq_;
		c.follow = o.follow_;
		c.key = o.key_ ? o.key_->data() : nullptr;
		c.schema = o.schema_ ? o.schema_->c_str() : nullptr;
		detail::check(dh_reader_open(name.c_str(), &c, &r_), "dh::reader: " + name);
		record_size_ = static_cast<std::size_t>(dh_block_schema(dh_reader_block(r_), nullptr, 0, nullptr));
	}
	reader(reader &&o) noexcept { take(o); }
	reader &operator=(reader &&o) noexcept
	{
		if (this != &o) {
			close();
			take(o);
		}
		return *this;
	}
	reader(const reader &) = delete;
	reader &operator=(const reader &) = delete;
	~reader() { close(); }

	explicit operator bool() const noexcept { return r_ != nullptr; }
	void close() noexcept
	{
		dh_reader_close(r_);
		r_ = nullptr;
	}

	/*
	 * The next message, or std::nullopt at end-of-stream (then at_end()).
	 * Throws dh::error on a timeout (timed_out(): ETIMEDOUT, or EAGAIN with
	 * no_wait), errc::writer_dead, errc::evicted, EINTR, and
	 * errc::checksum for a message that failed its check (it is skipped:
	 * calling next again continues after it).
	 */
	std::optional<message> next(duration timeout = forever)
	{
		std::error_code ec;
		std::optional<message> m = next(timeout, ec);
		if (ec)
			throw error(ec, "dh::reader::next: " + (r_ ? name_ : std::string("no channel (moved from or closed)")));
		return m;
	}

	/* The same without exceptions: std::nullopt with ec set on an error,
	 * with ec clear at end-of-stream. */
	std::optional<message> next(duration timeout, std::error_code &ec) noexcept
	{
		dh_msg m{};
		ec.clear();
		if (!r_) {
			ec = std::error_code(EBADF, category());
			return std::nullopt;
		}
		int rc = dh_reader_next(r_, &m, detail::ns(timeout));
		if (rc == DH_END) {
			end_ = true;
			return std::nullopt;
		}
		if (rc < 0) {
			ec = std::error_code(-rc, category());
			return std::nullopt;
		}
		end_ = false;
		message out;
		out.data = bytes(m.data, m.len);
		out.seq = m.seq;
		out.time_ns = m.time_ns;
		out.lost = m.lost;
		return out;
	}

	/* The next record as a T, copied out and the slot released at once;
	 * std::nullopt at end-of-stream.  Throws errc::schema without reading
	 * when sizeof(T) is not the channel's record size. */
	template <class T>
	std::optional<T> next_record(duration timeout = forever)
	{
		detail::record_type_check<T>();
		get("next_record");
		if (record_size_ && sizeof(T) != record_size_)
			throw error(DH_ESCHEMA, "dh::reader::next_record: " + name_ + ": record of " +
						    std::to_string(sizeof(T)) + " bytes, the channel's are " +
						    std::to_string(record_size_));
		std::optional<message> m = next(timeout);
		if (!m)
			return std::nullopt;
		T t = m->as<T>();
		release();
		return t;
	}

	/*
	 * The messages until end-of-stream, as a range:
	 *     for (auto &m : r.messages(1s)) use(m.data);
	 * each wait bounded by timeout; errors (a timeout too) throw as next().
	 * A message is valid until the next iteration.
	 */
	message_range messages(duration timeout = forever) noexcept { return message_range(this, timeout); }

	/* Done with the current message: lets the writer reuse its slot
	 * (sync) or marks the queue claim done.  Implied by next. */
	void release() noexcept
	{
		if (r_)
			dh_reader_release(r_);
	}

	/* The last next() found end-of-stream. */
	bool at_end() const noexcept { return end_; }
	std::uint64_t position() const { return dh_reader_position(get("position")); }
	std::uint64_t lost() const { return dh_reader_lost(get("lost")); }
	std::size_t record_size() const { get("record_size"); return record_size_; }
	const std::string &name() const noexcept { return name_; }
	dh_reader *native_handle() const noexcept { return r_; }

private:
	dh_reader *get(const char *op) const
	{
		if (!r_)
			throw error(EBADF, std::string("dh::reader::") + op + ": no channel (moved from or closed)");
		return r_;
	}

	void take(reader &o) noexcept
	{
		r_ = std::exchange(o.r_, nullptr);
		record_size_ = o.record_size_;
		end_ = o.end_;
		name_ = std::move(o.name_);
	}

	dh_reader *r_ = nullptr;
	std::size_t record_size_ = 0;
	bool end_ = false;
	std::string name_;
};

inline message_range::iterator &
message_range::iterator::operator++()
{
	m_.reset();
	m_ = r_->next(t_);
	return *this;
}

} // namespace dh

namespace std {
template <>
struct is_error_code_enum<dh::errc> : true_type {};
} // namespace std

#endif
