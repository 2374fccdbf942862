// SPDX-License-Identifier: GPL-2.0
/*
 * PAGEMAP_SCAN with PM_SCAN_CLEAR_SOFT_DIRTY: the soft-dirty state of exactly
 * the pages reported is cleared, atomically with the report, and no write is
 * ever lost. After each step the soft-dirty state is checked twice, through
 * PAGEMAP_SCAN and through bit 55 of /proc/self/pagemap, which must agree.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/fs.h>

#include "kselftest_harness.h"
#include "vm_util.h"
#include "hugepage_settings.h"

#ifndef PM_SCAN_CLEAR_SOFT_DIRTY
#define PM_SCAN_CLEAR_SOFT_DIRTY	BIT_ULL(2)
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define MAX_REGIONS	4096

static size_t page_size;

struct scan {
	int fd;
	struct page_region vec[MAX_REGIONS];
	long n;			/* regions returned, or -1 */
	int err;		/* errno when n < 0 */
	uint64_t walk_end;
};

static long pm_scan(struct scan *s, int fd, void *start, void *end,
		    uint64_t flags, struct page_region *vec, uint64_t vec_len,
		    uint64_t max_pages, uint64_t mask, uint64_t ret_mask)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = flags,
		.start = (uintptr_t)start,
		.end = (uintptr_t)end,
		.vec = (uintptr_t)vec,
		.vec_len = vec_len,
		.max_pages = max_pages,
		.category_mask = mask,
		.return_mask = ret_mask,
	};

	s->n = ioctl(fd, PAGEMAP_SCAN, &arg);
	s->err = s->n < 0 ? errno : 0;
	s->walk_end = arg.walk_end;
	return s->n;
}

/* Get-and-clear: report the soft-dirty pages of start..end and clear them. */
static long sd_get_clear(struct scan *s, void *start, void *end,
			 uint64_t vec_len, uint64_t max_pages)
{
	return pm_scan(s, s->fd, start, end, PM_SCAN_CLEAR_SOFT_DIRTY,
		       vec_len ? s->vec : NULL, vec_len, max_pages,
		       PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY);
}

/* Whether page i of base..base+n pages is in the regions of s. */
static bool in_report(struct scan *s, char *base, size_t i)
{
	uintptr_t a = (uintptr_t)(base + i * page_size);
	long r;

	for (r = 0; r < s->n; r++)
		if (s->vec[r].start <= a && a < s->vec[r].end)
			return true;
	return false;
}

static uint64_t reported_pages(struct scan *s)
{
	uint64_t n = 0;
	long r;

	for (r = 0; r < s->n; r++)
		n += (s->vec[r].end - s->vec[r].start) / page_size;
	return n;
}

/*
 * The soft-dirty state of n pages at base, read by a report-only
 * PAGEMAP_SCAN and by /proc/self/pagemap; -1 if they disagree on a page.
 * Sets bit i of *mask for a soft-dirty page i (n <= 64).
 */
static int sd_state(int fd, char *base, size_t n, uint64_t *mask)
{
	struct scan *s = calloc(1, sizeof(*s));
	size_t i;
	int ret = 0;

	*mask = 0;
	if (!s || pm_scan(s, fd, base, base + n * page_size, 0, s->vec,
			  MAX_REGIONS, 0, PAGE_IS_SOFT_DIRTY,
			  PAGE_IS_SOFT_DIRTY) < 0) {
		free(s);
		return -1;
	}
	for (i = 0; i < n; i++) {
		bool scan_sd = in_report(s, base, i);
		bool pm_sd = pagemap_is_softdirty(fd, base + i * page_size);

		if (scan_sd != pm_sd) {
			ksft_print_msg("page %zu: PAGEMAP_SCAN says %d, pagemap bit 55 says %d\n",
				       i, scan_sd, pm_sd);
			ret = -1;
		}
		if (scan_sd && i < 64)
			*mask |= 1ULL << i;
	}
	free(s);
	return ret;
}

/* Pages first..last-1 of a mask. */
static uint64_t pages(unsigned int first, unsigned int last)
{
	uint64_t m = last >= 64 ? ~0ULL : (1ULL << last) - 1;

	return m & ~((1ULL << first) - 1);
}

#define EXPECT_SD(fd, base, n, expected) do {				\
	uint64_t __m;							\
	ASSERT_EQ(0, sd_state(fd, (char *)(base), n, &__m));		\
	ASSERT_EQ((uint64_t)(expected), __m);				\
} while (0)

static void touch(char *base, unsigned int first, unsigned int last)
{
	unsigned int i;

	for (i = first; i < last; i++)
		base[i * page_size] = (char)(i + 1);
}

static int count_vmas(char *start, char *end)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long s, e;
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 &&
		    s < (uintptr_t)end && e > (uintptr_t)start)
			n++;
	fclose(f);
	return n;
}

static char *map_anon(size_t n)
{
	char *p = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * n anonymous pages between two PROT_NONE guard pages, so that nothing mmap
 * places around them can merge with them. Unmap n + 2 pages from the page
 * before the one returned.
 */
static char *map_guarded(size_t n)
{
	char *raw = map_anon(n + 2);

	if (!raw)
		return NULL;
	if (mprotect(raw, page_size, PROT_NONE) ||
	    mprotect(raw + (n + 1) * page_size, page_size, PROT_NONE)) {
		munmap(raw, (n + 2) * page_size);
		return NULL;
	}
	return raw + page_size;
}

static void unmap_guarded(char *p, size_t n)
{
	munmap(p - page_size, (n + 2) * page_size);
}

FIXTURE(sd)
{
	struct scan *s;
};

FIXTURE_SETUP(sd)
{
	struct scan probe;

	page_size = getpagesize();
	self->s = calloc(1, sizeof(*self->s));
	ASSERT_NE(NULL, self->s);
	self->s->fd = open("/proc/self/pagemap", O_RDONLY);
	ASSERT_GE(self->s->fd, 0);
	if (pm_scan(&probe, self->s->fd, NULL, NULL, PM_SCAN_CLEAR_SOFT_DIRTY,
		    NULL, 0, 0, PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY) < 0 &&
	    probe.err == EINVAL)
		SKIP(return, "PM_SCAN_CLEAR_SOFT_DIRTY is not supported");
}

FIXTURE_TEARDOWN(sd)
{
	close(self->s->fd);
	free(self->s);
}

/* Combinations that make no sense fail with EINVAL. */
TEST_F(sd, einval)
{
	struct scan *s = self->s;
	char *p = map_anon(4);

	ASSERT_NE(NULL, p);
	touch(p, 0, 4);
	EXPECT_EQ(-1, pm_scan(s, s->fd, p, p + 4 * page_size,
			      PM_SCAN_CLEAR_SOFT_DIRTY | PM_SCAN_WP_MATCHING,
			      s->vec, 8, 0, PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY));
	EXPECT_EQ(EINVAL, s->err);
	EXPECT_EQ(-1, pm_scan(s, s->fd, p, p + 4 * page_size,
			      PM_SCAN_CLEAR_SOFT_DIRTY | PM_SCAN_CHECK_WPASYNC,
			      s->vec, 8, 0, PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY));
	EXPECT_EQ(EINVAL, s->err);
	EXPECT_EQ(-1, pm_scan(s, s->fd, p, p + 4 * page_size,
			      PM_SCAN_CLEAR_SOFT_DIRTY | (1 << 3),
			      s->vec, 8, 0, PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY));
	EXPECT_EQ(EINVAL, s->err);
	/* Nothing was cleared by the failed calls. */
	EXPECT_SD(s->fd, p, 4, pages(0, 4));
	munmap(p, 4 * page_size);
}

/* A sub-range is cleared; the pages around it stay soft-dirty. */
TEST_F(sd, sub_range)
{
	struct scan *s = self->s;
	char *p = map_anon(16);

	ASSERT_NE(NULL, p);
	touch(p, 0, 16);
	EXPECT_SD(s->fd, p, 16, pages(0, 16));
	ASSERT_EQ(1, sd_get_clear(s, p + 4 * page_size, p + 12 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_EQ((uintptr_t)(p + 4 * page_size), s->vec[0].start);
	EXPECT_EQ((uintptr_t)(p + 12 * page_size), s->vec[0].end);
	EXPECT_EQ((uint64_t)PAGE_IS_SOFT_DIRTY, s->vec[0].categories);
	EXPECT_EQ((uintptr_t)(p + 12 * page_size), s->walk_end);
	EXPECT_SD(s->fd, p, 16, pages(0, 4) | pages(12, 16));
	/* Only what is written from now on reads soft-dirty. */
	touch(p, 6, 7);
	touch(p, 11, 12);
	EXPECT_SD(s->fd, p, 16, pages(0, 4) | pages(6, 7) | pages(11, 16));
	ASSERT_EQ(2, sd_get_clear(s, p + 4 * page_size, p + 12 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_SD(s->fd, p, 16, pages(0, 4) | pages(12, 16));
	munmap(p, 16 * page_size);
}

/* Without an output vector the whole matching range is cleared. */
TEST_F(sd, no_vec)
{
	struct scan *s = self->s;
	char *p = map_anon(32);

	ASSERT_NE(NULL, p);
	touch(p, 0, 20);
	ASSERT_EQ(0, sd_get_clear(s, p, p + 32 * page_size, 0, 0));
	EXPECT_EQ((uintptr_t)(p + 32 * page_size), s->walk_end);
	EXPECT_SD(s->fd, p, 32, 0);
	touch(p, 25, 26);
	EXPECT_SD(s->fd, p, 32, pages(25, 26));
	munmap(p, 32 * page_size);
}

/*
 * Content that changes without a write to the page tables: clear, move a page
 * over another (mremap), mprotect RO->RW, write, and a fresh mapping at the
 * same address. Each must read soft-dirty, and no other page.
 */
TEST_F(sd, remap_in_place)
{
	struct scan *s = self->s;
	char *p = map_anon(4), *q;

	ASSERT_NE(NULL, p);
	touch(p, 0, 4);
	ASSERT_EQ(0, sd_get_clear(s, p, p + 4 * page_size, 0, 0));
	EXPECT_SD(s->fd, p, 4, 0);

	/* Page 3 moves over page 1: page 1 has new content. */
	q = mremap(p + 3 * page_size, page_size, page_size,
		   MREMAP_MAYMOVE | MREMAP_FIXED, p + page_size);
	ASSERT_EQ(p + page_size, q);
	EXPECT_EQ(4, p[page_size]);
	EXPECT_SD(s->fd, p, 3, pages(1, 2));

	ASSERT_EQ(0, sd_get_clear(s, p, p + 3 * page_size, 0, 0));
	EXPECT_SD(s->fd, p, 3, 0);
	ASSERT_EQ(0, mprotect(p, 3 * page_size, PROT_READ));
	ASSERT_EQ(0, mprotect(p, 3 * page_size, PROT_READ | PROT_WRITE));
	EXPECT_SD(s->fd, p, 3, 0);
	p[2 * page_size] = 9;
	EXPECT_SD(s->fd, p, 3, pages(2, 3));

	/* A new mapping in place of a cleared one reads soft-dirty. */
	ASSERT_EQ(0, sd_get_clear(s, p, p + 3 * page_size, 0, 0));
	q = mmap(p, page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(p, q);
	EXPECT_SD(s->fd, p, 3, pages(0, 1));
	munmap(p, 3 * page_size);
}

/*
 * VM_SOFTDIRTY is cleared only inside the range: the VMA is split at its
 * edges; a later clear of the whole range lets the parts merge again. Between
 * the steps every written page reads soft-dirty.
 */
TEST_F(sd, vma_split_merge)
{
	struct scan *s = self->s;
	char *p = map_guarded(8);
	unsigned int i;

	ASSERT_NE(NULL, p);
	/* A new VMA is soft-dirty as a whole, populated or not. */
	touch(p, 0, 2);
	EXPECT_SD(s->fd, p, 8, pages(0, 8));
	EXPECT_EQ(1, count_vmas(p, p + 8 * page_size));

	ASSERT_EQ(1, sd_get_clear(s, p + 2 * page_size, p + 6 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_EQ(4, reported_pages(s));
	EXPECT_SD(s->fd, p, 8, pages(0, 2) | pages(6, 8));
	EXPECT_EQ(3, count_vmas(p, p + 8 * page_size));

	ASSERT_EQ(2, sd_get_clear(s, p, p + 8 * page_size, MAX_REGIONS, 0));
	EXPECT_EQ(4, reported_pages(s));
	EXPECT_SD(s->fd, p, 8, 0);
	EXPECT_EQ(1, count_vmas(p, p + 8 * page_size));

	/* Split and merge again by mprotect; no write goes unseen. */
	ASSERT_EQ(0, mprotect(p + 3 * page_size, page_size, PROT_READ));
	ASSERT_EQ(0, mprotect(p + 3 * page_size, page_size,
			      PROT_READ | PROT_WRITE));
	for (i = 0; i < 8; i++) {
		touch(p, i, i + 1);
		EXPECT_SD(s->fd, p, 8, pages(0, i + 1));
	}
	unmap_guarded(p, 8);
}

/*
 * VM_SOFTDIRTY is sticky on merge: a cleared part must not merge with a
 * neighbour that still has it, or its pages would read soft-dirty again.
 */
TEST_F(sd, no_merge_with_soft_dirty_neighbour)
{
	struct scan *s = self->s;
	char *p = map_anon(8);

	ASSERT_NE(NULL, p);
	touch(p, 0, 8);
	/* Pages 0..4 cleared, 4..8 keep VM_SOFTDIRTY: two VMAs. */
	ASSERT_EQ(1, sd_get_clear(s, p, p + 4 * page_size, MAX_REGIONS, 0));
	EXPECT_SD(s->fd, p, 8, pages(4, 8));
	EXPECT_EQ(2, count_vmas(p, p + 8 * page_size));
	/* mprotect splits and merges the clean part; its pages stay clean. */
	ASSERT_EQ(0, mprotect(p + page_size, page_size, PROT_READ));
	ASSERT_EQ(0, mprotect(p + page_size, page_size, PROT_READ | PROT_WRITE));
	EXPECT_SD(s->fd, p, 8, pages(4, 8));
	EXPECT_EQ(2, count_vmas(p, p + 8 * page_size));
	/* A later clear of the dirty part leaves every page clean. */
	ASSERT_EQ(1, sd_get_clear(s, p + 4 * page_size, p + 8 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_SD(s->fd, p, 8, 0);
	touch(p, 6, 7);
	EXPECT_SD(s->fd, p, 8, pages(6, 7));
	munmap(p, 8 * page_size);
}

/*
 * Once a sub-range was cleared, VM_SOFTDIRTY keeps VMAs apart: an mprotect()
 * RO/RW cycle of a cleared VMA next to one that was never cleared must not
 * merge them, or every cleared page would read soft-dirty again.
 */
TEST_F(sd, mprotect_keeps_cleared_part_clean)
{
	struct scan *s = self->s;
	char *p = map_guarded(16);

	ASSERT_NE(NULL, p);
	touch(p, 0, 16);
	ASSERT_EQ(1, sd_get_clear(s, p + 8 * page_size, p + 16 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_EQ(8, reported_pages(s));
	EXPECT_EQ(2, count_vmas(p, p + 16 * page_size));
	ASSERT_EQ(0, mprotect(p + 8 * page_size, 8 * page_size, PROT_READ));
	ASSERT_EQ(0, mprotect(p + 8 * page_size, 8 * page_size,
			      PROT_READ | PROT_WRITE));
	touch(p, 9, 10);
	EXPECT_SD(s->fd, p, 16, pages(0, 8) | pages(9, 10));
	EXPECT_EQ(2, count_vmas(p, p + 16 * page_size));
	unmap_guarded(p, 16);
}

/*
 * A new mapping placed next to a cleared VMA reads soft-dirty as a whole and
 * does not make the cleared pages read soft-dirty: it merges only with
 * soft-dirty neighbours.
 */
TEST_F(sd, new_mapping_next_to_cleared_part)
{
	struct scan *s = self->s;
	char *p = map_guarded(16);

	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, munmap(p + 8 * page_size, 8 * page_size));
	touch(p, 0, 8);
	ASSERT_EQ(1, sd_get_clear(s, p, p + 8 * page_size, MAX_REGIONS, 0));
	ASSERT_EQ(p + 8 * page_size,
		  mmap(p + 8 * page_size, 8 * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	touch(p, 3, 4);
	EXPECT_SD(s->fd, p, 16, pages(3, 4) | pages(8, 16));
	EXPECT_EQ(2, count_vmas(p, p + 16 * page_size));
	/* Once cleared too, the two merge again. */
	ASSERT_EQ(2, sd_get_clear(s, p, p + 16 * page_size, MAX_REGIONS, 0));
	EXPECT_SD(s->fd, p, 16, 0);
	EXPECT_EQ(1, count_vmas(p, p + 16 * page_size));
	unmap_guarded(p, 16);
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

/*
 * The VMAs split for soft-dirty precision are bounded to a quarter of
 * vm.max_map_count: past that the clear splits no VMA, and a VMA that would
 * have to be split keeps its soft-dirty state (over-reporting). Lower the
 * limit so that the budget runs out in the middle of a clear of 1024
 * separate runs: it must succeed, stay within the budget and lose nothing.
 */
TEST_F(sd, vma_budget_never_loses)
{
	const char *sysctl = "/proc/sys/vm/max_map_count";
	struct scan *s = self->s;
	long old = read_long(sysctl), limit;
	char *p;
	int before, after, lost = 0;
	size_t i;

	if (old < 0 || geteuid() != 0)
		SKIP(return, "needs root to lower vm.max_map_count");
	p = map_guarded(2048);
	ASSERT_NE(NULL, p);
	/* Every other page present: no THP may fill the holes (none without THP). */
	ASSERT_TRUE(!madvise(p, 2048 * page_size, MADV_NOHUGEPAGE) || errno == EINVAL);
	for (i = 0; i < 2048; i += 2)
		touch(p, i, i + 1);
	before = count_vmas(NULL, (char *)-1);
	limit = (before + 48) * 4;
	ASSERT_TRUE(write_long(sysctl, limit));

	/* Clear the 1024 present pages, each a run of its own. */
	EXPECT_EQ(0, pm_scan(s, s->fd, p, p + 2048 * page_size,
			     PM_SCAN_CLEAR_SOFT_DIRTY, NULL, 0, 0,
			     PAGE_IS_SOFT_DIRTY | PAGE_IS_PRESENT,
			     PAGE_IS_SOFT_DIRTY));
	after = count_vmas(NULL, (char *)-1);
	touch(p, 2, 3);
	touch(p, 1000, 1001);
	/* Nothing lost: the holes and the pages written since read soft-dirty. */
	for (i = 0; i < 2048; i++)
		if ((i % 2 || i == 2 || i == 1000) &&
		    pagemap_is_softdirty(s->fd, p + i * page_size) != 1)
			lost++;
	EXPECT_TRUE(write_long(sysctl, old));
	EXPECT_EQ(0, lost);
	EXPECT_LE(after, limit / 4 + 2);
	/* And the budget was used: VMAs were split up to it. */
	EXPECT_GT(after, before + 8);
	unmap_guarded(p, 2048);
}

/* With max_pages or a small vec, nothing unreported is cleared. */
TEST_F(sd, max_pages_and_small_vec)
{
	struct scan *s = self->s;
	char *p = map_anon(32), *at;
	uint64_t seen = 0, expect = 0;
	unsigned int i;

	ASSERT_NE(NULL, p);
	/* The VMA flag alone: a fresh, untouched mapping. */
	ASSERT_EQ(1, sd_get_clear(s, p, p + 32 * page_size, MAX_REGIONS, 3));
	EXPECT_EQ(3, reported_pages(s));
	EXPECT_EQ((uintptr_t)(p + 3 * page_size), s->walk_end);
	EXPECT_SD(s->fd, p, 32, pages(3, 32));

	/* Page table bits: written pages, reported five at a time. */
	touch(p, 0, 32);
	ASSERT_EQ(0, sd_get_clear(s, p, p + 32 * page_size, 0, 0));
	touch(p, 0, 32);
	ASSERT_EQ(1, sd_get_clear(s, p, p + 32 * page_size, MAX_REGIONS, 5));
	EXPECT_EQ(5, reported_pages(s));
	EXPECT_EQ((uintptr_t)(p + 5 * page_size), s->walk_end);
	EXPECT_SD(s->fd, p, 32, pages(5, 32));
	ASSERT_EQ(0, sd_get_clear(s, p, p + 32 * page_size, 0, 0));

	/* Every other page written, one region per call. */
	for (i = 0; i < 32; i += 2) {
		touch(p, i, i + 1);
		expect |= 1ULL << i;
	}
	at = p;
	while (at < p + 32 * page_size) {
		ASSERT_LE(0, sd_get_clear(s, at, p + 32 * page_size, 1, 0));
		if (s->n == 1) {
			i = (s->vec[0].start - (uintptr_t)p) / page_size;
			EXPECT_EQ(page_size, s->vec[0].end - s->vec[0].start);
			EXPECT_EQ(0, seen & (1ULL << i));
			seen |= 1ULL << i;
			/* Nothing past the reported page was cleared. */
			EXPECT_SD(s->fd, p, 32, expect & ~seen);
		}
		ASSERT_GT(s->walk_end, (uintptr_t)at);
		at = (char *)(uintptr_t)s->walk_end;
	}
	EXPECT_EQ(expect, seen);
	EXPECT_SD(s->fd, p, 32, 0);
	munmap(p, 32 * page_size);
}

/* THP built in; a "never" policy relaxed to "madvise" so that MADV_HUGEPAGE works. */
static bool thp_usable(void)
{
	char buf[128] = "";
	int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDWR);

	if (fd < 0)
		return false;
	if (read(fd, buf, sizeof(buf) - 1) > 0 && strstr(buf, "[never]"))
		write(fd, "madvise", 7);
	close(fd);
	return true;
}

/*
 * A THP fully inside the range is cleared at PMD level and stays huge; one
 * only partly inside is split and cleared page by page.
 */
TEST_F(sd, thp)
{
	struct scan *s = self->s;
	size_t hsize = read_pmd_pagesize();
	size_t hpages = hsize / getpagesize();
	char *raw, *p;

	if (!hsize || !thp_usable())
		SKIP(return, "transparent hugepages are not available");
	raw = mmap(NULL, 3 * hsize, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, raw);
	p = (char *)(((uintptr_t)raw + hsize - 1) & ~(hsize - 1));
	ASSERT_EQ(0, madvise(p, 2 * hsize, MADV_HUGEPAGE));
	memset(p, 1, 2 * hsize);
	ASSERT_TRUE(check_huge_anon(p, 2 * hsize, 2, hsize));

	/* Fully covered: one region, still huge, clean. */
	ASSERT_EQ(1, sd_get_clear(s, p, p + hsize, MAX_REGIONS, 0));
	EXPECT_EQ(hpages, reported_pages(s));
	/* The VMA was split at the range's edges: one THP in it. */
	ASSERT_TRUE(check_huge_anon(p, hsize, 1, hsize));
	ASSERT_EQ(0, pm_scan(s, s->fd, p, p + hsize, 0, s->vec, MAX_REGIONS, 0,
			     PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY));
	EXPECT_FALSE(pagemap_is_softdirty(s->fd, p));
	p[5 * page_size] = 2;
	EXPECT_TRUE(pagemap_is_softdirty(s->fd, p + 5 * page_size));

	/* Partly covered: pages 10..20 of the second THP. */
	ASSERT_EQ(1, sd_get_clear(s, p + hsize + 10 * page_size,
				  p + hsize + 20 * page_size, MAX_REGIONS, 0));
	EXPECT_EQ(10, reported_pages(s));
	EXPECT_FALSE(check_huge_anon(p + hsize, hsize, 1, hsize));
	EXPECT_SD(s->fd, p + hsize, 64, pages(0, 10) | pages(20, 64));
	p[hsize + 15 * page_size] = 3;
	EXPECT_SD(s->fd, p + hsize, 64, pages(0, 10) | pages(15, 16) |
		  pages(20, 64));
	munmap(raw, 3 * hsize);
}

/* Swapped-out pages keep their soft-dirty bit and are cleared in place. */
TEST_F(sd, swapped)
{
	struct scan *s = self->s;
	char *p = map_anon(16);
	unsigned int i;

	ASSERT_NE(NULL, p);
	touch(p, 0, 16);
	ASSERT_EQ(0, sd_get_clear(s, p, p + 16 * page_size, 0, 0));
	touch(p, 0, 8);
	ASSERT_EQ(0, madvise(p, 16 * page_size, MADV_PAGEOUT));
	for (i = 0; i < 16; i++)
		ASSERT_TRUE(pagemap_is_swapped(s->fd, p + i * page_size)) {
			TH_LOG("page %u was not swapped out: no swap?", i);
		}
	EXPECT_SD(s->fd, p, 16, pages(0, 8));
	ASSERT_EQ(1, sd_get_clear(s, p + 4 * page_size, p + 16 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_EQ(4, reported_pages(s));
	EXPECT_SD(s->fd, p, 16, pages(0, 4));
	for (i = 0; i < 16; i++)
		EXPECT_TRUE(pagemap_is_swapped(s->fd, p + i * page_size));
	/* Swapping in by reading does not dirty; writing does. */
	EXPECT_EQ(7, p[6 * page_size]);
	EXPECT_SD(s->fd, p, 16, pages(0, 4));
	p[9 * page_size] = 1;
	EXPECT_SD(s->fd, p, 16, pages(0, 4) | pages(9, 10));
	munmap(p, 16 * page_size);
}

/* A shared mapping's first write after a clear faults and is seen. */
TEST_F(sd, shared_memfd)
{
	struct scan *s = self->s;
	int fd = memfd_create("sd", 0);
	char *p;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, ftruncate(fd, 8 * page_size));
	p = mmap(NULL, 8 * page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	touch(p, 0, 4);
	ASSERT_EQ(1, sd_get_clear(s, p, p + 8 * page_size, MAX_REGIONS, 0));
	EXPECT_SD(s->fd, p, 8, 0);
	/* Present pages are write-protected; absent ones map read-only. */
	p[page_size] = 5;
	EXPECT_EQ(0, p[6 * page_size]);
	p[6 * page_size] = 5;
	EXPECT_SD(s->fd, p, 8, pages(1, 2) | pages(6, 7));
	munmap(p, 8 * page_size);
	close(fd);
}

/*
 * More separate soft-dirty runs than the output vector holds, around the
 * number of VM_SOFTDIRTY runs one walk records (64): the call reports at most
 * vec_len regions, writes nothing past them, and clears nothing it did not
 * report. Each one-page mapping is a fresh VMA (VM_SOFTDIRTY), so each is one
 * run and one region.
 */
#define VR_MAPS	130
TEST_F(sd, vec_full_at_vma_run_table)
{
	static const uint64_t lens[] = { 63, 64, 65, 127, 128, 129, 130 };
	struct scan *s = self->s;
	char *p;
	size_t i, k, n = 2 * VR_MAPS;

	for (k = 0; k < ARRAY_SIZE(lens); k++) {
		uint64_t len = lens[k], want = len < VR_MAPS ? len : VR_MAPS;

		p = map_anon(n);
		ASSERT_NE(NULL, p);
		for (i = 0; i < n; i += 2)
			ASSERT_EQ(0, munmap(p + (i + 1) * page_size, page_size));
		for (i = 0; i < n; i += 2)
			p[i * page_size] = 1;
		memset(s->vec, 0xa5, sizeof(s->vec));
		ASSERT_EQ((long)want,
			  sd_get_clear(s, p, p + n * page_size, len, 0)) {
			TH_LOG("vec_len %lu", (unsigned long)len);
		}
		/* Nothing written past the regions returned. */
		for (i = want * sizeof(struct page_region);
		     i < sizeof(s->vec); i++)
			ASSERT_EQ(0xa5, ((unsigned char *)s->vec)[i]) {
				TH_LOG("vec_len %lu: byte %zu written",
				       (unsigned long)len, i);
			}
		EXPECT_EQ(want, reported_pages(s));
		if (want < VR_MAPS)
			EXPECT_EQ((uintptr_t)(p + 2 * want * page_size),
				  s->walk_end);
		/* The reported pages are clean, the others still dirty. */
		for (i = 0; i < VR_MAPS; i++) {
			char *page = p + 2 * i * page_size;

			ASSERT_EQ(i >= want, pagemap_is_softdirty(s->fd, page)) {
				TH_LOG("vec_len %lu: page of map %zu",
				       (unsigned long)len, i);
			}
		}
		for (i = 0; i < n; i += 2)
			munmap(p + i * page_size, page_size);
	}
}

/* Sets a THP knob; returns the old value (the bracketed word) or "". */
static void thp_knob(const char *knob, const char *val, char *old, size_t len)
{
	char path[128], buf[256] = "", *a, *b;
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/mm/transparent_hugepage/%s",
		 knob);
	fd = open(path, O_RDWR);
	if (old)
		old[0] = 0;
	if (fd < 0)
		return;
	if (old && read(fd, buf, sizeof(buf) - 1) > 0) {
		a = strchr(buf, '[');
		b = a ? strchr(a, ']') : NULL;
		if (a && b && (size_t)(b - a) < len) {
			memcpy(old, a + 1, b - a - 1);
			old[b - a - 1] = 0;
		}
	}
	if (write(fd, val, strlen(val)) < 0)
		ksft_print_msg("writing %s to %s: %s\n", val, path,
			       strerror(errno));
	close(fd);
}

/*
 * A PMD-mapped shmem THP cleared in part. Splitting a huge PMD of a file or
 * shmem mapping only zaps it; the part of the huge page that was not reported
 * must still read soft-dirty afterwards, and the reported part clean, and every
 * later write must be seen. Run with shmem_enabled "always" and with "advise"
 * (MADV_HUGEPAGE), as QEMU guest RAM and tmpfs users have it.
 */
static void shmem_thp_case(struct __test_metadata *_metadata, struct scan *s,
			   const char *mode)
{
	size_t hsize = read_pmd_pagesize(), hpages = hsize / page_size, i;
	char old[32], *raw, *p;
	int fd;

	thp_knob("shmem_enabled", mode, old, sizeof(old));
	fd = memfd_create("sd-thp", 0);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, ftruncate(fd, 2 * hsize));
	raw = mmap(NULL, 3 * hsize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	ASSERT_NE(MAP_FAILED, raw);
	p = (char *)(((uintptr_t)raw + hsize - 1) & ~(hsize - 1));
	ASSERT_EQ(p, mmap(p, 2 * hsize, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_FIXED, fd, 0));
	ASSERT_EQ(0, madvise(p, 2 * hsize, MADV_HUGEPAGE));
	memset(p, 1, 2 * hsize);
	ASSERT_TRUE(check_huge_shmem(p, 2 * hsize, 2, hsize)) {
		TH_LOG("shmem_enabled=%s: no PMD-mapped shmem THP", mode);
	}
	ASSERT_EQ(1, sd_get_clear(s, p, p + 2 * hsize, MAX_REGIONS, 0));
	EXPECT_EQ(2 * hpages, reported_pages(s));
	memset(p, 2, 2 * hsize);
	ASSERT_TRUE(check_huge_shmem(p, 2 * hsize, 2, hsize));

	/* The first quarter of the first THP (range end inside it). */
	ASSERT_EQ(1, sd_get_clear(s, p, p + hpages / 4 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_EQ(hpages / 4, reported_pages(s));
	for (i = 0; i < 2 * hpages; i++)
		ASSERT_EQ(i >= hpages / 4,
			  pagemap_is_softdirty(s->fd, p + i * page_size)) {
			TH_LOG("shmem_enabled=%s: page %zu", mode, i);
		}
	/* From inside the second THP to its end (range start inside it). */
	ASSERT_EQ(1, sd_get_clear(s, p + (hpages + 3) * page_size,
				  p + 2 * hsize, MAX_REGIONS, 0));
	EXPECT_EQ(hpages - 3, reported_pages(s));
	for (i = hpages; i < 2 * hpages; i++)
		ASSERT_EQ(i < hpages + 3,
			  pagemap_is_softdirty(s->fd, p + i * page_size)) {
			TH_LOG("shmem_enabled=%s: page %zu", mode, i);
		}
	/* The output cut inside a THP: max_pages. */
	ASSERT_EQ(1, sd_get_clear(s, p + hpages / 4 * page_size,
				  p + 2 * hsize, MAX_REGIONS, 7));
	EXPECT_EQ(7, reported_pages(s));
	EXPECT_EQ((uintptr_t)(p + (hpages / 4 + 7) * page_size), s->walk_end);
	for (i = 0; i < 2 * hpages; i++)
		ASSERT_EQ((i >= hpages / 4 + 7 && i < hpages) ||
			  (i >= hpages && i < hpages + 3),
			  pagemap_is_softdirty(s->fd, p + i * page_size)) {
			TH_LOG("shmem_enabled=%s: page %zu", mode, i);
		}
	/* Later writes are seen wherever they land; nothing else is dirty. */
	p[2 * page_size] = 3;
	p[(hpages + 100) * page_size] = 3;
	ASSERT_EQ(0, sd_get_clear(s, p, p + 2 * hsize, 0, 0));
	EXPECT_FALSE(pagemap_is_softdirty(s->fd, p + 2 * page_size));
	p[2 * page_size] = 4;
	p[(hpages + 100) * page_size] = 4;
	ASSERT_EQ(2, sd_get_clear(s, p, p + 2 * hsize, MAX_REGIONS, 0));
	EXPECT_EQ(2, reported_pages(s));
	munmap(raw, 3 * hsize);
	close(fd);
	if (old[0])
		thp_knob("shmem_enabled", old, NULL, 0);
}

TEST_F(sd, shmem_thp_always)
{
	if (!thp_usable())
		SKIP(return, "transparent hugepages are not available");
	shmem_thp_case(_metadata, self->s, "always");
}

TEST_F(sd, shmem_thp_advise)
{
	if (!thp_usable())
		SKIP(return, "transparent hugepages are not available");
	shmem_thp_case(_metadata, self->s, "advise");
}

/*
 * The flag clears what it reports, so it must report only soft-dirty pages:
 * a category_mask without PAGE_IS_SOFT_DIRTY, or with it inverted, is EINVAL,
 * and nothing is cleared.
 */
TEST_F(sd, mask_must_select_soft_dirty)
{
	struct scan *s = self->s;
	char *p = map_anon(4);
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_CLEAR_SOFT_DIRTY,
		.start = (uintptr_t)p,
		.end = (uintptr_t)(p + 4 * page_size),
		.category_inverted = PAGE_IS_SOFT_DIRTY,
		.category_mask = PAGE_IS_SOFT_DIRTY,
	};

	ASSERT_NE(NULL, p);
	touch(p, 0, 4);
	ASSERT_EQ(0, sd_get_clear(s, p, p + 4 * page_size, 0, 0));
	touch(p, 0, 2);
	EXPECT_EQ(-1, pm_scan(s, s->fd, p, p + 4 * page_size,
			      PM_SCAN_CLEAR_SOFT_DIRTY, s->vec, 8, 0,
			      PAGE_IS_PRESENT, PAGE_IS_SOFT_DIRTY));
	EXPECT_EQ(EINVAL, s->err);
	EXPECT_EQ(-1, pm_scan(s, s->fd, p, p + 4 * page_size,
			      PM_SCAN_CLEAR_SOFT_DIRTY, NULL, 0, 0, 0, 0));
	EXPECT_EQ(EINVAL, s->err);
	EXPECT_EQ(-1, ioctl(s->fd, PAGEMAP_SCAN, &arg));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_SD(s->fd, p, 4, pages(0, 2));
	munmap(p, 4 * page_size);
}

/* Hugetlb pages are reported but never cleared (documented). */
TEST_F(sd, hugetlb_not_cleared)
{
	struct scan *s = self->s;
	size_t hsize = default_huge_page_size();
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");
	unsigned long nr = 0;
	char *p;

	if (!hsize)
		SKIP(return, "hugetlb is not available");
	ASSERT_NE(NULL, f);
	ASSERT_EQ(1, fscanf(f, "%lu", &nr));
	if (nr < 2) {
		rewind(f);
		fprintf(f, "%lu\n", nr + 2);
	}
	fclose(f);
	p = mmap(NULL, hsize, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 1, hsize);
	ASSERT_EQ(1, sd_get_clear(s, p, p + hsize, MAX_REGIONS, 0));
	EXPECT_EQ(hsize / page_size, reported_pages(s));
	ASSERT_EQ(1, sd_get_clear(s, p, p + hsize, MAX_REGIONS, 0));
	EXPECT_EQ(hsize / page_size, reported_pages(s));
	munmap(p, hsize);
}

/*
 * A call that fails after it cleared (here: the output vector is not
 * writable) leaves what it cleared soft-dirty again.
 */
TEST_F(sd, failed_copy_out_loses_nothing)
{
	struct scan *s = self->s;
	char *p = map_anon(8);
	struct page_region *ro;

	ASSERT_NE(NULL, p);
	ro = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	touch(p, 0, 8);
	ASSERT_EQ(0, sd_get_clear(s, p, p + 8 * page_size, 0, 0));
	touch(p, 2, 5);
	EXPECT_EQ(-1, pm_scan(s, s->fd, p, p + 8 * page_size,
			      PM_SCAN_CLEAR_SOFT_DIRTY, ro, 16, 0,
			      PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY));
	EXPECT_EQ(EFAULT, s->err);
	/* Over-reported (the whole VMA), never lost. */
	EXPECT_SD(s->fd, p, 8, pages(0, 8));
	munmap(ro, page_size);
	munmap(p, 8 * page_size);
}

/*
 * Clearing another process's state needs ptrace-attach access at the time of
 * the call: a pagemap descriptor opened by root and kept after dropping to
 * another user still reads, but may not clear. A process may always clear its
 * own.
 */
TEST_F(sd, authority)
{
	struct scan *s = self->s;
	char *p = map_anon(4);
	int go[2], status;
	pid_t target, scanner;
	char path[64];

	if (geteuid() != 0)
		SKIP(return, "needs root to drop privileges");
	ASSERT_NE(NULL, p);
	touch(p, 0, 4);
	ASSERT_EQ(0, pipe(go));
	target = fork();
	ASSERT_GE(target, 0);
	if (target == 0) {
		char c;

		close(go[1]);
		read(go[0], &c, 1);
		_exit(0);
	}
	close(go[0]);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", target);

	scanner = fork();
	ASSERT_GE(scanner, 0);
	if (scanner == 0) {
		int fd = open(path, O_RDONLY), own;
		int bad = 0;

		if (fd < 0)
			_exit(10);
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(11);
		/* Dropping privileges made it non-dumpable, its /proc root's. */
		if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
			_exit(12);
		/* Reading still works... */
		if (pm_scan(s, fd, p, p + 4 * page_size, 0, s->vec, 8, 0,
			    PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY) != 1)
			bad |= 1;
		/* ... clearing does not, nor without a vector. */
		if (pm_scan(s, fd, p, p + 4 * page_size,
			    PM_SCAN_CLEAR_SOFT_DIRTY, s->vec, 8, 0,
			    PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY) != -1 ||
		    s->err != EACCES)
			bad |= 2;
		if (pm_scan(s, fd, p, p + 4 * page_size,
			    PM_SCAN_CLEAR_SOFT_DIRTY, NULL, 0, 0,
			    PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY) != -1 ||
		    s->err != EACCES)
			bad |= 4;
		/* Its own memory it may clear, unprivileged. */
		own = open("/proc/self/pagemap", O_RDONLY);
		if (own < 0 || pm_scan(s, own, p, p + 4 * page_size,
				       PM_SCAN_CLEAR_SOFT_DIRTY, s->vec, 8, 0,
				       PAGE_IS_SOFT_DIRTY,
				       PAGE_IS_SOFT_DIRTY) != 1)
			bad |= 8;
		_exit(bad);
	}
	ASSERT_EQ(scanner, waitpid(scanner, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));

	/* The target is untouched; root may clear it. */
	s->fd = open(path, O_RDONLY);
	ASSERT_GE(s->fd, 0);
	ASSERT_EQ(1, pm_scan(s, s->fd, p, p + 4 * page_size,
			     PM_SCAN_CLEAR_SOFT_DIRTY, s->vec, 8, 0,
			     PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY));
	EXPECT_EQ(4, reported_pages(s));
	ASSERT_EQ(0, pm_scan(s, s->fd, p, p + 4 * page_size, 0, s->vec, 8, 0,
			     PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY));
	close(s->fd);
	s->fd = open("/proc/self/pagemap", O_RDONLY);
	close(go[1]);
	waitpid(target, &status, 0);
	munmap(p, 4 * page_size);
}

/*
 * Writers write pages while the main thread loops get-and-clear. A write is
 * made after scan c completed... rather: after scans 0..c-1 completed and
 * before scan s started, so one of scans c..s must report its page.
 */
#define TR_PAGES	256
#define TR_WRITERS	2
#define TR_LOG		BIT_ULL(18)
#define TR_SCANS	3000

struct tr_write {
	uint32_t page, first, last;
};

static atomic_uint tr_started, tr_completed;
static atomic_bool tr_stop;
static char *tr_mem;

struct tr_writer {
	pthread_t thread;
	unsigned int seed;
	struct tr_write *log;
	size_t n;
};

static void *tr_write_loop(void *arg)
{
	struct tr_writer *w = arg;

	while (!atomic_load(&tr_stop) && w->n < TR_LOG) {
		uint32_t page = rand_r(&w->seed) % TR_PAGES;
		uint32_t c = atomic_load(&tr_completed);

		__atomic_store_n((uint32_t *)(tr_mem + page * page_size), c + 1,
				 __ATOMIC_RELAXED);
		w->log[w->n++] = (struct tr_write) {
			page, c, atomic_load(&tr_started) };
		if (rand_r(&w->seed) % 64 == 0)
			sched_yield();
	}
	return NULL;
}

TEST_F_TIMEOUT(sd, threads_writing, 600)
{
	struct scan *s = self->s;
	struct tr_writer w[TR_WRITERS];
	uint8_t *reported;	/* [scan][page] */
	uint64_t checked = 0, missed = 0;
	uint32_t k, nscans;
	long r;
	int i;

	page_size = getpagesize();
	tr_mem = map_anon(TR_PAGES);
	ASSERT_NE(NULL, tr_mem);
	reported = calloc((size_t)(TR_SCANS + 1) * TR_PAGES, 1);
	ASSERT_NE(NULL, reported);
	/* A first clear so that the VMA flag does not report everything. */
	ASSERT_EQ(0, sd_get_clear(s, tr_mem, tr_mem + TR_PAGES * page_size, 0, 0));
	atomic_store(&tr_started, 0);
	atomic_store(&tr_completed, 0);
	atomic_store(&tr_stop, false);
	for (i = 0; i < TR_WRITERS; i++) {
		w[i].seed = 1 + i;
		w[i].n = 0;
		w[i].log = malloc(TR_LOG * sizeof(*w[i].log));
		ASSERT_NE(NULL, w[i].log);
		ASSERT_EQ(0, pthread_create(&w[i].thread, NULL, tr_write_loop,
					    &w[i]));
	}
	for (k = 0; k <= TR_SCANS; k++) {
		if (k == TR_SCANS) {
			/* The last scan starts after every write. */
			atomic_store(&tr_stop, true);
			for (i = 0; i < TR_WRITERS; i++)
				pthread_join(w[i].thread, NULL);
		}
		atomic_store(&tr_started, k + 1);
		ASSERT_LE(0, sd_get_clear(s, tr_mem,
					  tr_mem + TR_PAGES * page_size,
					  MAX_REGIONS, 0));
		atomic_store(&tr_completed, k + 1);
		for (r = 0; r < s->n; r++) {
			uintptr_t a;

			for (a = s->vec[r].start; a < s->vec[r].end; a += page_size)
				reported[(size_t)k * TR_PAGES +
					 (a - (uintptr_t)tr_mem) / page_size] = 1;
		}
	}
	nscans = TR_SCANS + 1;
	for (i = 0; i < TR_WRITERS; i++) {
		size_t j;

		for (j = 0; j < w[i].n; j++) {
			struct tr_write *x = &w[i].log[j];
			bool seen = false;

			for (k = x->first; k <= x->last && k < nscans; k++)
				if (reported[(size_t)k * TR_PAGES + x->page]) {
					seen = true;
					break;
				}
			checked++;
			if (!seen && missed++ < 5)
				TH_LOG("page %u: a write in no report of scans %u..%u",
				       x->page, x->first, x->last);
		}
		free(w[i].log);
	}
	ksft_print_msg("threads_writing: %u scans, writes checked %llu, missed %llu\n",
		       nscans, (unsigned long long)checked,
		       (unsigned long long)missed);
	EXPECT_NE(0, checked);
	EXPECT_EQ(0, missed);
	free(reported);
	munmap(tr_mem, TR_PAGES * page_size);
}

TEST_HARNESS_MAIN
