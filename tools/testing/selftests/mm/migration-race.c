// SPDX-License-Identifier: GPL-2.0
/*
 * Race soft-dirty clearing (/proc/self/clear_refs) and PAGEMAP_SCAN
 * write-protection (PM_SCAN_WP_MATCHING on a UFFD_FEATURE_WP_ASYNC range)
 * against page migration.
 *
 * A helper thread moves the test region back and forth between two NUMA
 * nodes with move_pages(2) while the main thread clears soft-dirty or
 * write-protects the region.  If either operation finds a *writable*
 * migration entry and only changes a software bit on it,
 * remove_migration_pte() / remove_migration_pmd() later restore a writable
 * entry that
 *  - is not soft-dirty: the next write does not fault and is lost to
 *    soft-dirty tracking (pagemap bit 55 stays clear), or
 *  - carries no uffd-wp bit: PAGEMAP_SCAN reports PAGE_IS_WRITTEN for a page
 *    that nothing wrote.
 *
 * Needs two NUMA nodes with memory (a two-node guest, or "numa=fake=2" with
 * CONFIG_NUMA_EMU) and should run on at least two CPUs.
 *
 * Usage: migration-race [-t seconds per test]   (default 10)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>

#include "kselftest.h"
#include "vm_util.h"
#include "hugepage_settings.h"

#ifndef MPOL_F_MEMS_ALLOWED
#define MPOL_F_MEMS_ALLOWED	0x4
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE		0x2
#endif

/* One migrate_pages() batch (NR_MAX_BATCHED_MIGRATION == HPAGE_PMD_NR). */
#define NR_PTE_PAGES		512
#define MAX_NODES		1024
#define LONG_BITS		(8 * sizeof(unsigned long))
#define NSEC_PER_SEC		1000000000ULL
#define TAINT_WARN		0x200UL

enum region_kind {
	REGION_PTE,		/* order-0 anonymous pages */
	REGION_THP,		/* one PMD-mapped anonymous THP */
	REGION_HUGETLB,		/* one private anonymous hugetlb page */
};

static const char * const kind_name[] = {
	[REGION_PTE] = "PTE-mapped pages",
	[REGION_THP] = "PMD-mapped THP",
	[REGION_HUGETLB] = "hugetlb page",
};

static unsigned int runtime_s = 10;
static size_t pagesize, pmdsize;
static int pagemap_fd;
static int node_a = -1, node_b = -1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/*
 * Wait without sleeping (a sleep would round up to timer slack); yield so
 * that the per-CPU work of lru_cache_disable() in move_pages() can run.
 */
static void spin_ns(uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end)
		sched_yield();
}

static unsigned long read_taint(void)
{
	char buf[64] = {};
	int fd = open("/proc/sys/kernel/tainted", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtoul(buf, NULL, 10) : 0;
}

/* Parse a node list such as "0-1,3" into a bitmap. */
static void parse_node_list(const char *s, unsigned long *mask)
{
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s)
			break;
		b = a;
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		for (; a <= b && a < MAX_NODES; a++)
			if (a >= 0)
				mask[a / LONG_BITS] |= 1UL << (a % LONG_BITS);
		s = end;
		while (*s == ',' || *s == '\n' || *s == ' ')
			s++;
	}
}

/*
 * Pick two nodes that have memory and that our cpuset allows (move_pages()
 * fails with -EACCES for a node outside cpuset.mems and with -ENODEV for a
 * node without memory).  No libnuma: raw get_mempolicy(MPOL_F_MEMS_ALLOWED).
 */
static int find_two_nodes(void)
{
	unsigned long allowed[MAX_NODES / LONG_BITS] = {};
	unsigned long memory[MAX_NODES / LONG_BITS] = {};
	char buf[4096] = {};
	ssize_t n = -1;
	int fd, i;

	if (syscall(__NR_get_mempolicy, NULL, allowed, MAX_NODES, NULL,
		    MPOL_F_MEMS_ALLOWED))
		return -errno;

	fd = open("/sys/devices/system/node/has_memory", O_RDONLY);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n > 0)
		parse_node_list(buf, memory);
	else
		memcpy(memory, allowed, sizeof(memory));

	for (i = 0; i < MAX_NODES; i++) {
		unsigned long bit = 1UL << (i % LONG_BITS);

		if (!(allowed[i / LONG_BITS] & memory[i / LONG_BITS] & bit))
			continue;
		if (node_a < 0) {
			node_a = i;
		} else {
			node_b = i;
			return 0;
		}
	}
	return -ENODEV;
}

struct migrator {
	pthread_t thread;
	void **addrs;
	int *nodes;
	int *status;
	unsigned long nr;
	int node[2];		/* targets, alternated; node[0] comes first */
	int stop;
	unsigned long calls;	/* completed move_pages() calls */
	unsigned long moved;	/* entries that ended up on the target node */
	unsigned long failed;	/* entries with a negative status */
	int last_errno;		/* of a failed move_pages() call */
	uint64_t cycle_ns;	/* moving average of one call */
};

/* Returns the number of entries now on @target, or -errno. */
static long migrate_once(struct migrator *m, int target)
{
	unsigned long i;
	long moved = 0;

	for (i = 0; i < m->nr; i++)
		m->nodes[i] = target;
	if (syscall(__NR_move_pages, 0, m->nr, m->addrs, m->nodes, m->status,
		    MPOL_MF_MOVE) < 0)
		return -errno;
	for (i = 0; i < m->nr; i++) {
		if (m->status[i] == target)
			moved++;
		else if (m->status[i] < 0)
			m->failed++;
	}
	return moved;
}

static void *migrator_fn(void *arg)
{
	struct migrator *m = arg;
	unsigned int t = 0;

	while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
		uint64_t start = now_ns(), dur, avg;
		long moved = migrate_once(m, m->node[t]);

		dur = now_ns() - start;
		if (moved < 0) {
			m->last_errno = -moved;
			usleep(1000);
		} else {
			__atomic_add_fetch(&m->moved, moved, __ATOMIC_RELAXED);
		}
		avg = __atomic_load_n(&m->cycle_ns, __ATOMIC_RELAXED);
		avg = avg ? (7 * avg + dur) / 8 : dur;
		__atomic_store_n(&m->cycle_ns, avg, __ATOMIC_RELAXED);
		/* move_pages() returned: no migration entry of ours is left. */
		__atomic_add_fetch(&m->calls, 1, __ATOMIC_RELEASE);
		t ^= 1;
	}
	return NULL;
}

/*
 * Prepare a migrator for @nr entries @stride apart and check that one
 * migration works at all.  Returns 0, or -1 with a reason in @why.
 */
static int migrator_init(struct migrator *m, char *mem, unsigned long nr,
			 size_t stride, char *why, size_t whylen)
{
	unsigned long i;
	long moved;
	int cur;

	memset(m, 0, sizeof(*m));
	m->nr = nr;
	m->addrs = calloc(nr, sizeof(*m->addrs));
	m->nodes = calloc(nr, sizeof(*m->nodes));
	m->status = calloc(nr, sizeof(*m->status));
	if (!m->addrs || !m->nodes || !m->status)
		ksft_exit_fail_msg("calloc failed\n");
	for (i = 0; i < nr; i++)
		m->addrs[i] = mem + i * stride;

	/* Where does the region live now?  (nodes == NULL: query only) */
	if (syscall(__NR_move_pages, 0, nr, m->addrs, NULL, m->status, 0) < 0) {
		snprintf(why, whylen, "move_pages(query): %s", strerror(errno));
		return -1;
	}
	cur = m->status[0];
	m->node[0] = cur == node_a ? node_b : node_a;
	m->node[1] = cur == node_a ? node_a : node_b;

	moved = migrate_once(m, m->node[0]);
	if (moved <= 0) {
		snprintf(why, whylen,
			 "move_pages() to node %d failed: %s (status[0]=%d)",
			 m->node[0], moved < 0 ? strerror(-moved) : "no entry moved",
			 m->status[0]);
		return -1;
	}
	/* The thread continues by moving it back. */
	cur = m->node[0];
	m->node[0] = m->node[1];
	m->node[1] = cur;
	m->failed = 0;
	return 0;
}

static void migrator_start(struct migrator *m)
{
	if (pthread_create(&m->thread, NULL, migrator_fn, m))
		ksft_exit_fail_msg("pthread_create failed\n");
}

static void migrator_stop(struct migrator *m)
{
	__atomic_store_n(&m->stop, 1, __ATOMIC_RELAXED);
	pthread_join(m->thread, NULL);
	ksft_print_msg("  migrator: %lu calls, %lu moved, %lu failed, %llu us/call%s%s\n",
		       m->calls, m->moved, m->failed,
		       (unsigned long long)m->cycle_ns / 1000,
		       m->last_errno ? ", last error: " : "",
		       m->last_errno ? strerror(m->last_errno) : "");
	free(m->addrs);
	free(m->nodes);
	free(m->status);
}

/*
 * Wait until the move_pages() call in flight (if any) has returned: every
 * migration entry it installed has then been removed again.
 */
static bool migrator_wait_call(struct migrator *m)
{
	unsigned long gen = __atomic_load_n(&m->calls, __ATOMIC_ACQUIRE);
	uint64_t deadline = now_ns() + 30 * NSEC_PER_SEC;

	while (__atomic_load_n(&m->calls, __ATOMIC_ACQUIRE) == gen) {
		if (now_ns() > deadline)
			return false;
		sched_yield();
	}
	return true;
}

/* A random delay up to one migration cycle, so that phases do not lock. */
static void random_delay(struct migrator *m)
{
	uint64_t cycle = __atomic_load_n(&m->cycle_ns, __ATOMIC_RELAXED);

	spin_ns(rnd() % (cycle + 1));
}

static long pagemap_scan(char *start, size_t len, uint64_t flags,
			 uint64_t category_mask, uint64_t return_mask,
			 struct page_region *vec, size_t vec_len)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = flags,
		.start = (uintptr_t)start,
		.end = (uintptr_t)(start + len),
		.vec = (uintptr_t)vec,
		.vec_len = vec_len,
		.category_mask = category_mask,
		.return_mask = return_mask,
	};

	return ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
}

/* Is @addr still mapped by a PMD (THP) or a hugetlb entry? */
static bool is_huge_mapped(char *addr)
{
	struct page_region r;

	return pagemap_scan(addr, pagesize, 0, PAGE_IS_HUGE, PAGE_IS_HUGE,
			    &r, 1) == 1;
}

static size_t region_len(enum region_kind kind)
{
	switch (kind) {
	case REGION_PTE:
		return NR_PTE_PAGES * pagesize;
	case REGION_THP:
		return pmdsize;
	default:
		return default_huge_page_size();
	}
}

/* Map, populate (and for THP verify) the region; NULL with @why on failure. */
static char *region_alloc(enum region_kind kind, size_t len, char *why,
			  size_t whylen)
{
	char *raw, *mem;

	if (kind == REGION_HUGETLB) {
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (mem == MAP_FAILED) {
			snprintf(why, whylen, "MAP_HUGETLB: %s", strerror(errno));
			return NULL;
		}
		memset(mem, 1, len);
		return mem;
	}

	/* Over-allocate to align a THP; the slack stays unpopulated. */
	raw = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		ksft_exit_fail_msg("mmap failed: %s\n", strerror(errno));
	mem = (char *)(((uintptr_t)raw + len - 1) & ~(uintptr_t)(len - 1));
	if (mem > raw)
		munmap(raw, mem - raw);
	munmap(mem + len, raw + 2 * len - (mem + len));
	if (madvise(mem, len, kind == REGION_THP ? MADV_HUGEPAGE :
						   MADV_NOHUGEPAGE))
		ksft_exit_fail_msg("madvise failed: %s\n", strerror(errno));
	memset(mem, 1, len);
	if (kind == REGION_THP && !check_huge_anon(mem, len, 1, pmdsize)) {
		snprintf(why, whylen, "could not allocate a PMD-mapped THP");
		munmap(mem, len);
		return NULL;
	}
	return mem;
}

static void region_free(char *mem, size_t len)
{
	munmap(mem, len);
}

static void write_pages(char *mem, size_t len)
{
	size_t off;

	for (off = 0; off < len; off += pagesize)
		mem[off]++;
}

/*
 * Kernel warnings during a test: page_table_check=on WARNs when uffd-wp is
 * set on a writable migration entry (the only symptom of the THP case of
 * fix 2).  WARN_ON_ONCE() fires once per boot and call site, so read new
 * /dev/kmsg records rather than only the taint flag, which stays set.
 */
struct warn_watch {
	int kmsg_fd;
	unsigned long taint;
};

static void warn_watch_start(struct warn_watch *w)
{
	w->taint = read_taint();
	w->kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (w->kmsg_fd >= 0)
		lseek(w->kmsg_fd, 0, SEEK_END);
}

static bool warn_watch_end(struct warn_watch *w)
{
	unsigned long taint = read_taint();
	bool warned = false;
	char rec[8192];

	while (w->kmsg_fd >= 0) {
		ssize_t n = read(w->kmsg_fd, rec, sizeof(rec) - 1);
		char *msg;

		if (n < 0 && errno == EPIPE)	/* overwritten records */
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		if (!strncmp(msg, "WARNING:", 8) || !strncmp(msg, "BUG:", 4)) {
			if (!warned)
				ksft_print_msg("  kernel: %.200s", msg);
			warned = true;
		}
	}
	if (w->kmsg_fd >= 0)
		close(w->kmsg_fd);
	if ((taint & TAINT_WARN) && !(w->taint & TAINT_WARN)) {
		if (!warned)
			ksft_print_msg("  kernel WARNING during the test (taint W), see dmesg\n");
		warned = true;
	}
	return warned;
}

/*
 * Fix 1: clear_refs must not leave a writable migration entry writable.
 *
 * Loop: clear soft-dirty, write every page, every page must read soft-dirty
 * in /proc/self/pagemap.  A page written through a PTE that was restored
 * writable and clean by remove_migration_pte() reads clean: a lost write.
 */
static void test_softdirty(enum region_kind kind)
{
	size_t len = region_len(kind);
	unsigned long nr = len / pagesize, i, iters = 0, bad_iters = 0;
	unsigned long misses = 0;
	struct warn_watch ww;
	bool split = false;
	char why[256] = "";
	struct migrator m;
	uint64_t *pm, deadline;
	int crfd;
	char *mem;

	ksft_print_msg("[RUN] soft-dirty vs. migration, %s\n", kind_name[kind]);
	if (!softdirty_supported()) {
		ksft_test_result_skip("soft-dirty vs. migration, %s: soft-dirty not supported\n",
				      kind_name[kind]);
		return;
	}
	if (kind == REGION_THP && (!thp_is_enabled() || !pmdsize)) {
		ksft_test_result_skip("soft-dirty vs. migration, %s: THP not enabled\n",
				      kind_name[kind]);
		return;
	}

	mem = region_alloc(kind, len, why, sizeof(why));
	if (!mem) {
		ksft_test_result_skip("soft-dirty vs. migration, %s: %s\n",
				      kind_name[kind], why);
		return;
	}
	/* A THP is migrated as one folio: one move_pages() entry. */
	if (migrator_init(&m, mem, kind == REGION_PTE ? nr : 1, pagesize,
			  why, sizeof(why))) {
		ksft_test_result_skip("soft-dirty vs. migration, %s: %s\n",
				      kind_name[kind], why);
		region_free(mem, len);
		return;
	}

	crfd = open("/proc/self/clear_refs", O_WRONLY);
	if (crfd < 0)
		ksft_exit_fail_msg("open clear_refs: %s\n", strerror(errno));
	pm = malloc(nr * sizeof(*pm));
	if (!pm)
		ksft_exit_fail_msg("malloc failed\n");

	warn_watch_start(&ww);
	migrator_start(&m);
	deadline = now_ns() + runtime_s * NSEC_PER_SEC;
	while (now_ns() < deadline) {
		unsigned long bad = 0;

		random_delay(&m);
		if (write(crfd, "4", 1) != 1)
			ksft_exit_fail_msg("clear_refs: %s\n", strerror(errno));
		write_pages(mem, len);
		if (pread(pagemap_fd, pm, nr * sizeof(*pm),
			  (uintptr_t)mem / pagesize * sizeof(*pm)) !=
		    (ssize_t)(nr * sizeof(*pm)))
			ksft_exit_fail_msg("pagemap read failed\n");
		for (i = 0; i < nr; i++)
			if (!(pm[i] & PM_SOFT_DIRTY))
				bad++;
		if (bad) {
			if (!misses)
				ksft_print_msg("  iteration %lu: %lu written, not soft-dirty\n",
					       iters, bad);
			misses += bad;
			bad_iters++;
		}
		iters++;
		if (kind == REGION_THP && !is_huge_mapped(mem)) {
			split = true;
			break;
		}
	}
	migrator_stop(&m);
	close(crfd);
	free(pm);

	ksft_print_msg("  %lu iterations, %lu with lost writes (%lu pages)\n",
		       iters, bad_iters, misses);
	if (warn_watch_end(&ww) || misses)
		ksft_test_result_fail("soft-dirty vs. migration, %s\n", kind_name[kind]);
	else if (!m.moved)
		ksft_test_result_skip("soft-dirty vs. migration, %s: nothing migrated\n",
				      kind_name[kind]);
	else if (split)
		ksft_test_result_skip("soft-dirty vs. migration, %s: THP split after %lu rounds\n",
				      kind_name[kind], iters);
	else
		ksft_test_result_pass("soft-dirty vs. migration, %s\n", kind_name[kind]);
	region_free(mem, len);
}

static int uffd_open(bool hugetlb)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED |
			    (hugetlb ? UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0),
	};
	int fd;

	fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/* Make the THP writable again without a write (a write would split it). */
static void uffd_unprotect(int uffd, char *mem, size_t len)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)mem, .len = len },
		.mode = 0,
	};

	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp))
		ksft_exit_fail_msg("UFFDIO_WRITEPROTECT: %s\n", strerror(errno));
}

/*
 * Fix 2: PM_SCAN_WP_MATCHING must not put uffd-wp on a writable migration
 * entry.
 *
 * Loop: make the pages writable (write them; for the THP, un-protect it
 * because an async uffd-wp write fault splits the PMD), write-protect
 * everything with PAGEMAP_SCAN, wait for the move_pages() call in flight to
 * return, then a report-only PAGEMAP_SCAN must find no written page.
 *
 * PTEs and hugetlb: remove_migration_pte() restores a writable migration
 * entry writable and drops uffd-wp, so the page reads PAGE_IS_WRITTEN.
 * THP: remove_migration_pmd() write-protects again (pmd_mkuffd()), nothing
 * is visible here; with page_table_check=on the kernel WARNs about the
 * uffd-wp bit on a writable migration entry (read from /dev/kmsg).
 */
static void test_pagemap_scan_wp(enum region_kind kind)
{
	size_t len = region_len(kind);
	unsigned long nr = len / pagesize, iters = 0, bad_iters = 0;
	unsigned long written = 0;
	struct warn_watch ww;
	struct page_region *vec;
	bool split = false, stuck = false, warned;
	char why[256] = "";
	struct migrator m;
	uint64_t deadline;
	int uffd, ret;
	char *mem;

	ksft_print_msg("[RUN] PAGEMAP_SCAN WP vs. migration, %s\n", kind_name[kind]);
	if (kind == REGION_THP && (!thp_is_enabled() || !pmdsize)) {
		ksft_test_result_skip("PAGEMAP_SCAN WP vs. migration, %s: THP not enabled\n",
				      kind_name[kind]);
		return;
	}
	if (kind == REGION_HUGETLB &&
	    (!default_huge_page_size() || !hugetlb_setup_default(1))) {
		ksft_test_result_skip("PAGEMAP_SCAN WP vs. migration, %s: no free hugetlb page\n",
				      kind_name[kind]);
		return;
	}
	uffd = uffd_open(kind == REGION_HUGETLB);
	if (uffd < 0) {
		ksft_test_result_skip("PAGEMAP_SCAN WP vs. migration, %s: uffd WP_ASYNC: %s\n",
				      kind_name[kind], strerror(-uffd));
		return;
	}

	mem = region_alloc(kind, len, why, sizeof(why));
	if (!mem) {
		ksft_test_result_skip("PAGEMAP_SCAN WP vs. migration, %s: %s\n",
				      kind_name[kind], why);
		close(uffd);
		return;
	}
	ret = uffd_register(uffd, mem, len, false, true, false);
	if (ret) {
		ksft_test_result_skip("PAGEMAP_SCAN WP vs. migration, %s: UFFDIO_REGISTER: %s\n",
				      kind_name[kind], strerror(-ret));
		goto out_free;
	}
	if (migrator_init(&m, mem, kind == REGION_PTE ? nr : 1, pagesize,
			  why, sizeof(why))) {
		ksft_test_result_skip("PAGEMAP_SCAN WP vs. migration, %s: %s\n",
				      kind_name[kind], why);
		goto out_free;
	}
	vec = calloc(nr, sizeof(*vec));
	if (!vec)
		ksft_exit_fail_msg("calloc failed\n");

	warn_watch_start(&ww);
	migrator_start(&m);
	deadline = now_ns() + runtime_s * NSEC_PER_SEC;
	while (now_ns() < deadline) {
		unsigned long bad = 0;
		long i, n;

		if (kind == REGION_THP)
			uffd_unprotect(uffd, mem, len);
		else
			write_pages(mem, len);

		random_delay(&m);
		/* Write-protect every written page; vec == NULL: WP only. */
		if (pagemap_scan(mem, len, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
				 PAGE_IS_WRITTEN, PAGE_IS_WRITTEN, NULL, 0) < 0)
			ksft_exit_fail_msg("PAGEMAP_SCAN(WP): %s\n", strerror(errno));

		/* Let entries installed before/during the scan be removed. */
		if (!migrator_wait_call(&m)) {
			stuck = true;
			break;
		}

		/* Nothing wrote since the WP scan: nothing may read written. */
		n = pagemap_scan(mem, len, 0, PAGE_IS_WRITTEN, PAGE_IS_WRITTEN,
				 vec, nr);
		if (n < 0)
			ksft_exit_fail_msg("PAGEMAP_SCAN: %s\n", strerror(errno));
		for (i = 0; i < n; i++)
			bad += (vec[i].end - vec[i].start) / pagesize;
		if (bad) {
			if (!written)
				ksft_print_msg("  round %lu: %lu clean pages read written, +%#lx\n",
					       iters, bad,
					       (unsigned long)(vec[0].start - (uintptr_t)mem));
			written += bad;
			bad_iters++;
		}
		iters++;
		if (kind == REGION_THP && !is_huge_mapped(mem)) {
			split = true;
			break;
		}
	}
	migrator_stop(&m);
	free(vec);

	ksft_print_msg("  %lu iterations, %lu with spurious PAGE_IS_WRITTEN (%lu pages)\n",
		       iters, bad_iters, written);
	warned = warn_watch_end(&ww);
	if (stuck)
		ksft_test_result_fail("PAGEMAP_SCAN WP vs. migration, %s: move_pages() hung\n",
				      kind_name[kind]);
	else if (written || warned)
		ksft_test_result_fail("PAGEMAP_SCAN WP vs. migration, %s\n", kind_name[kind]);
	else if (!m.moved)
		ksft_test_result_skip("PAGEMAP_SCAN WP vs. migration, %s: nothing migrated\n",
				      kind_name[kind]);
	else if (split)
		ksft_test_result_skip("PAGEMAP_SCAN WP vs. migration, %s: THP split, %lu rounds\n",
				      kind_name[kind], iters);
	else
		ksft_test_result_pass("PAGEMAP_SCAN WP vs. migration, %s\n", kind_name[kind]);
out_free:
	uffd_unregister(uffd, mem, len);
	region_free(mem, len);
	close(uffd);
}

int main(int argc, char **argv)
{
	long ncpus;
	int opt, err;

	while ((opt = getopt(argc, argv, "t:h")) != -1) {
		switch (opt) {
		case 't':
			runtime_s = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: %s [-t seconds per test]\n", argv[0]);
			return KSFT_FAIL;
		}
	}

	ksft_print_header();

	err = find_two_nodes();
	if (err)
		ksft_exit_skip("need two NUMA nodes with memory (try numa=fake=2): %s\n",
			       strerror(-err));

	pagesize = getpagesize();
	pmdsize = read_pmd_pagesize();
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap_fd < 0)
		ksft_exit_fail_msg("open /proc/self/pagemap: %s\n", strerror(errno));

	ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	ksft_print_msg("nodes %d and %d, %ld CPUs, %u s per test\n",
		       node_a, node_b, ncpus, runtime_s);
	if (ncpus < 2)
		ksft_print_msg("only one CPU: the races are unlikely to be hit\n");

	ksft_set_plan(5);
	test_softdirty(REGION_PTE);
	/*
	 * On x86 (and every other soft-dirty architecture) pmd_mkdirty() also
	 * sets the soft-dirty bit, and remove_migration_pmd() calls it when the
	 * migration entry carried the dirty bit, which it does whenever
	 * migration entries have room for A/D bits (not with CONFIG_SWAP=n, not
	 * on x86 with the L1TF swap limit): then this case cannot fail.
	 */
	test_softdirty(REGION_THP);
	test_pagemap_scan_wp(REGION_PTE);
	test_pagemap_scan_wp(REGION_THP);
	test_pagemap_scan_wp(REGION_HUGETLB);

	close(pagemap_fd);
	ksft_finished();
}
