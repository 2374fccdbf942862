// SPDX-License-Identifier: GPL-2.0
/*
 * PAGEMAP_SCAN with PM_SCAN_CLEAR_SOFT_DIRTY: the soft-dirty state of the pages
 * reported is cleared, atomically with the report, and no write is ever lost.
 * VM_SOFTDIRTY, which makes a whole new VMA read soft-dirty, is cleared only
 * from a VMA every page of which was reported: until then the VMA's pages
 * read soft-dirty (over-reported, by design). After each step the soft-dirty
 * state is checked twice, through PAGEMAP_SCAN and through bit 55 of
 * /proc/self/pagemap, which must agree.
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

/* Get-and-clear of everything in start..end, without an output vector. */
static long sd_clear_all(struct scan *s, void *start, void *end)
{
	return sd_get_clear(s, start, end, 0, 0);
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
	char *p = map_guarded(16);

	ASSERT_NE(NULL, p);
	/* A first clear of the whole VMA takes its VM_SOFTDIRTY. */
	touch(p, 0, 16);
	ASSERT_EQ(0, sd_clear_all(s, p, p + 16 * page_size));
	EXPECT_SD(s->fd, p, 16, 0);
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
	unmap_guarded(p, 16);
}

/* Without an output vector the whole matching range is cleared. */
TEST_F(sd, no_vec)
{
	struct scan *s = self->s;
	char *p = map_guarded(32);

	ASSERT_NE(NULL, p);
	touch(p, 0, 20);
	ASSERT_EQ(0, sd_get_clear(s, p, p + 32 * page_size, 0, 0));
	EXPECT_EQ((uintptr_t)(p + 32 * page_size), s->walk_end);
	EXPECT_SD(s->fd, p, 32, 0);
	touch(p, 25, 26);
	EXPECT_SD(s->fd, p, 32, pages(25, 26));
	unmap_guarded(p, 32);
}

/*
 * Content that changes without a write to the page tables: clear, move a page
 * over another (mremap), mprotect RO->RW, write, and a fresh mapping at the
 * same address. Each must read soft-dirty. The moved page keeps the page offset
 * it had, so the three pages stay three VMAs and the fresh mapping merges with
 * none of them: it alone reads soft-dirty.
 */
TEST_F(sd, remap_in_place)
{
	struct scan *s = self->s;
	char *p = map_guarded(4), *q;

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
	EXPECT_SD(s->fd, p, 3, 0);
	q = mmap(p, page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(p, q);
	EXPECT_SD(s->fd, p, 3, pages(0, 1));
	EXPECT_EQ(3, count_vmas(p, p + 3 * page_size));
	unmap_guarded(p, 4);
}

/*
 * VM_SOFTDIRTY is cleared only from a VMA every page of which was reported:
 * a clear of part of a new VMA leaves all of it reading soft-dirty, and no
 * VMA is split for it. Then every written page reads soft-dirty.
 */
TEST_F(sd, vma_flag_cleared_whole)
{
	struct scan *s = self->s;
	char *p = map_guarded(8);
	unsigned int i;

	ASSERT_NE(NULL, p);
	/* A new VMA is soft-dirty as a whole, populated or not. */
	touch(p, 0, 2);
	EXPECT_SD(s->fd, p, 8, pages(0, 8));
	EXPECT_EQ(1, count_vmas(p, p + 8 * page_size));

	/* Part of it: reported, and still soft-dirty. */
	ASSERT_EQ(1, sd_get_clear(s, p + 2 * page_size, p + 6 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_EQ(4, reported_pages(s));
	EXPECT_SD(s->fd, p, 8, pages(0, 8));
	EXPECT_EQ(1, count_vmas(p, p + 8 * page_size));

	/* Masks that leave holes out do not report every page either. */
	EXPECT_EQ(1, pm_scan(s, s->fd, p, p + 8 * page_size,
			     PM_SCAN_CLEAR_SOFT_DIRTY, s->vec, MAX_REGIONS, 0,
			     PAGE_IS_SOFT_DIRTY | PAGE_IS_PRESENT,
			     PAGE_IS_SOFT_DIRTY));
	EXPECT_EQ(2, reported_pages(s));
	EXPECT_SD(s->fd, p, 8, pages(0, 8));

	/* All of it, holes included: the flag goes. */
	ASSERT_EQ(1, sd_get_clear(s, p, p + 8 * page_size, MAX_REGIONS, 0));
	EXPECT_EQ(8, reported_pages(s));
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
 * Once the flag is gone, clears are precise: an mprotect() RO/RW cycle of a
 * cleared part next to a part not cleared changes no page's state.
 */
TEST_F(sd, mprotect_keeps_cleared_part_clean)
{
	struct scan *s = self->s;
	char *p = map_guarded(16);

	ASSERT_NE(NULL, p);
	touch(p, 0, 16);
	ASSERT_EQ(0, sd_clear_all(s, p, p + 16 * page_size));
	touch(p, 0, 16);
	ASSERT_EQ(1, sd_get_clear(s, p + 8 * page_size, p + 16 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_EQ(8, reported_pages(s));
	EXPECT_EQ(1, count_vmas(p, p + 16 * page_size));
	ASSERT_EQ(0, mprotect(p + 8 * page_size, 8 * page_size, PROT_READ));
	ASSERT_EQ(0, mprotect(p + 8 * page_size, 8 * page_size,
			      PROT_READ | PROT_WRITE));
	touch(p, 9, 10);
	EXPECT_SD(s->fd, p, 16, pages(0, 8) | pages(9, 10));
	EXPECT_EQ(1, count_vmas(p, p + 16 * page_size));
	unmap_guarded(p, 16);
}

/*
 * A new mapping placed next to a cleared VMA merges with it, and the merged
 * VMA reads soft-dirty as a whole (VM_SOFTDIRTY is sticky on merge, as with
 * clear_refs): over-reported, never lost, until a clear covers all of it.
 */
TEST_F(sd, new_mapping_next_to_cleared_part)
{
	struct scan *s = self->s;
	char *p = map_guarded(16);

	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, munmap(p + 8 * page_size, 8 * page_size));
	touch(p, 0, 8);
	ASSERT_EQ(1, sd_get_clear(s, p, p + 8 * page_size, MAX_REGIONS, 0));
	EXPECT_SD(s->fd, p, 8, 0);
	ASSERT_EQ(p + 8 * page_size,
		  mmap(p + 8 * page_size, 8 * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	touch(p, 3, 4);
	EXPECT_SD(s->fd, p, 16, pages(0, 16));
	EXPECT_EQ(1, count_vmas(p, p + 16 * page_size));
	/* A clear of all of it makes it precise again. */
	ASSERT_EQ(1, sd_get_clear(s, p, p + 16 * page_size, MAX_REGIONS, 0));
	EXPECT_SD(s->fd, p, 16, 0);
	touch(p, 12, 13);
	EXPECT_SD(s->fd, p, 16, pages(12, 13));
	unmap_guarded(p, 16);
}

/* With max_pages or a small vec, nothing unreported is cleared. */
TEST_F(sd, max_pages_and_small_vec)
{
	struct scan *s = self->s;
	char *p = map_guarded(32), *at;
	uint64_t seen = 0, expect = 0;
	unsigned int i;

	ASSERT_NE(NULL, p);
	/*
	 * The VMA flag alone, a fresh, untouched mapping: three pages are
	 * reported, the VMA keeps its flag, all its pages read soft-dirty.
	 */
	ASSERT_EQ(1, sd_get_clear(s, p, p + 32 * page_size, MAX_REGIONS, 3));
	EXPECT_EQ(3, reported_pages(s));
	EXPECT_EQ((uintptr_t)(p + 3 * page_size), s->walk_end);
	EXPECT_SD(s->fd, p, 32, pages(0, 32));

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
	unmap_guarded(p, 32);
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
 * A THP fully inside the range is cleared at PMD level and stays huge; an
 * anonymous one only partly inside is split and cleared page by page.
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
	/* The VMA of the two THPs (MADV_HUGEPAGE split it) loses its flag. */
	ASSERT_EQ(0, sd_clear_all(s, p, p + 2 * hsize));
	ASSERT_TRUE(check_huge_anon(p, 2 * hsize, 2, hsize));
	memset(p, 1, 2 * hsize);

	/* Fully covered: one region, still huge, clean. */
	ASSERT_EQ(1, sd_get_clear(s, p, p + hsize, MAX_REGIONS, 0));
	EXPECT_EQ(hpages, reported_pages(s));
	ASSERT_TRUE(check_huge_anon(p, 2 * hsize, 2, hsize));
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
	char *p = map_guarded(16);
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
	unmap_guarded(p, 16);
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
 * More separate soft-dirty one-page VMAs than the output vector holds: the
 * call reports at most vec_len regions, writes nothing past them, and clears
 * nothing it did not report. Each one-page mapping is a fresh VMA
 * (VM_SOFTDIRTY) reported whole or not at all, so each is one region, whose
 * flag goes if it was reported.
 */
#define VR_MAPS	130
TEST_F(sd, vec_full_one_page_vmas)
{
	static const uint64_t lens[] = { 63, 64, 65, 127, 128, 129, 130 };
	struct scan *s = self->s;
	char *p;
	size_t i, k, n = 2 * VR_MAPS;

	for (k = 0; k < ARRAY_SIZE(lens); k++) {
		uint64_t len = lens[k], want = len < VR_MAPS ? len : VR_MAPS;

		p = map_guarded(n);
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
		unmap_guarded(p, n);
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
 * A PMD-mapped shmem THP reported in part. Splitting a huge PMD of a file or
 * shmem mapping only zaps it, which would lose the state of the part not
 * reported: such a huge page is reported and left as it is, huge and
 * soft-dirty as a whole (over-reported). Reported whole, it is cleared. Run
 * with shmem_enabled "always" and with "advise" (MADV_HUGEPAGE), as QEMU guest
 * RAM and tmpfs users have it.
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
	/* The whole VMA: both huge pages cleared at PMD level, the flag gone. */
	ASSERT_EQ(1, sd_get_clear(s, p, p + 2 * hsize, MAX_REGIONS, 0));
	EXPECT_EQ(2 * hpages, reported_pages(s));
	for (i = 0; i < 2 * hpages; i++)
		ASSERT_FALSE(pagemap_is_softdirty(s->fd, p + i * page_size)) {
			TH_LOG("shmem_enabled=%s: page %zu", mode, i);
		}
	memset(p, 2, 2 * hsize);
	ASSERT_TRUE(check_huge_shmem(p, 2 * hsize, 2, hsize));

	/* The first quarter of the first THP (range end inside it)... */
	ASSERT_EQ(1, sd_get_clear(s, p, p + hpages / 4 * page_size,
				  MAX_REGIONS, 0));
	EXPECT_EQ(hpages / 4, reported_pages(s));
	/* ... from inside the second THP to its end (range start inside it)... */
	ASSERT_EQ(1, sd_get_clear(s, p + (hpages + 3) * page_size,
				  p + 2 * hsize, MAX_REGIONS, 0));
	EXPECT_EQ(hpages - 3, reported_pages(s));
	/* ... and the output cut inside a THP by max_pages. */
	ASSERT_EQ(1, sd_get_clear(s, p + hpages / 4 * page_size,
				  p + 2 * hsize, MAX_REGIONS, 7));
	EXPECT_EQ(7, reported_pages(s));
	EXPECT_EQ((uintptr_t)(p + (hpages / 4 + 7) * page_size), s->walk_end);
	/* Neither huge page was split nor cleared. */
	ASSERT_TRUE(check_huge_shmem(p, 2 * hsize, 2, hsize));
	for (i = 0; i < 2 * hpages; i++)
		ASSERT_TRUE(pagemap_is_softdirty(s->fd, p + i * page_size)) {
			TH_LOG("shmem_enabled=%s: page %zu", mode, i);
		}
	/* Reported whole they are cleared; later writes are seen. */
	ASSERT_EQ(0, sd_clear_all(s, p, p + 2 * hsize));
	EXPECT_FALSE(pagemap_is_softdirty(s->fd, p + 2 * page_size));
	p[2 * page_size] = 4;
	p[(hpages + 100) * page_size] = 4;
	EXPECT_TRUE(pagemap_is_softdirty(s->fd, p + 2 * page_size));
	EXPECT_TRUE(pagemap_is_softdirty(s->fd, p + (hpages + 100) * page_size));
	ASSERT_LE(1, sd_get_clear(s, p, p + 2 * hsize, MAX_REGIONS, 0));
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
 * Long ranges over several VMAs of several huge pages each, with small output
 * vectors and max_pages, as a tracker's first calls over a fresh arena make:
 * anonymous 4 KiB pages, a hole, anonymous THPs, a memfd of PMD-mapped shmem
 * THPs (shmem_enabled "always") and 4 KiB memfd pages. Each call must return
 * what a report-only call with the same arguments returns (regions and
 * walk_end), and leave every page's state as it was but for the pages it
 * reported: those are clean afterwards, but for the pages of a shmem THP
 * reported in part, which keep their state whole (over-reported by design).
 * An earlier version cleared a shmem THP reported in part by splitting it
 * and marking its VMA, so that clean pages outside the reported part, and
 * outside the range, read soft-dirty afterwards.
 */
#define AR_A		1024	/* anonymous 4 KiB pages */
#define AR_B_OFF	3	/* in huge pages from the start */
#define AR_HUGE_B	4	/* anonymous THPs */
#define AR_HUGE_C	4	/* shmem THPs */
#define AR_D		512	/* 4 KiB memfd pages */

struct arena {
	char *base;
	size_t hpages, pages;
	char *b, *c, *d;
	uint8_t *before, *after;
};

static void arena_state(struct arena *a, int fd, uint8_t *out)
{
	size_t i;

	for (i = 0; i < a->pages; i++)
		out[i] = pagemap_is_softdirty(fd, a->base + i * page_size);
}

/* Clear everything (every VMA whole), then write a pattern. */
static long arena_reset(struct arena *a, struct scan *s)
{
	size_t i;
	long n = sd_clear_all(s, a->base, a->base + a->pages * page_size);

	for (i = 0; i < AR_A; i += 3)
		a->base[i * page_size] = 1;
	a->b[5 * page_size] = 1;			/* THP 0 of B */
	a->b[(2 * a->hpages + 9) * page_size] = 1;	/* THP 2 of B */
	a->c[7 * page_size] = 1;			/* THP 0 of C */
	a->c[(a->hpages + 1) * page_size] = 1;		/* THP 1 of C */
	a->c[(2 * a->hpages + 300) * page_size] = 1;	/* THP 2 of C */
	for (i = 0; i < AR_D; i += 5)
		a->d[i * page_size] = 1;
	return n;
}

static void arena_step(struct __test_metadata *_metadata, struct arena *a,
		       struct scan *s, struct scan *r, size_t first,
		       size_t last, uint64_t vec_len, uint64_t max_pages)
{
	char *start = a->base + first * page_size;
	char *end = a->base + last * page_size;
	size_t i, h, c0 = (a->c - a->base) / page_size;
	size_t in_huge[AR_HUGE_C] = { 0 };
	long k;

	ASSERT_EQ(0, arena_reset(a, s));
	arena_state(a, s->fd, a->before);
	ASSERT_LE(0, pm_scan(r, s->fd, start, end, 0, r->vec, vec_len,
			     max_pages, PAGE_IS_SOFT_DIRTY,
			     PAGE_IS_SOFT_DIRTY));
	ASSERT_LE(0, pm_scan(s, s->fd, start, end, PM_SCAN_CLEAR_SOFT_DIRTY,
			     s->vec, vec_len, max_pages, PAGE_IS_SOFT_DIRTY,
			     PAGE_IS_SOFT_DIRTY));
	ASSERT_EQ(r->n, s->n);
	ASSERT_EQ(r->walk_end, s->walk_end);
	for (k = 0; k < s->n; k++) {
		ASSERT_EQ(r->vec[k].start, s->vec[k].start);
		ASSERT_EQ(r->vec[k].end, s->vec[k].end);
	}
	arena_state(a, s->fd, a->after);
	for (i = 0; i < a->pages; i++) {
		h = (i - c0) / a->hpages;
		if (i >= c0 && h < AR_HUGE_C && in_report(s, a->base, i))
			in_huge[h]++;
	}
	for (i = 0; i < a->pages; i++) {
		bool expect = a->before[i];

		h = (i - c0) / a->hpages;
		if (in_report(s, a->base, i) &&
		    !(i >= c0 && h < AR_HUGE_C && in_huge[h] < a->hpages))
			expect = false;
		ASSERT_EQ(expect, a->after[i]) {
			TH_LOG("pages %zu..%zu, vec_len %lu, max_pages %lu",
			       first, last, (unsigned long)vec_len,
			       (unsigned long)max_pages);
			TH_LOG("page %zu: soft-dirty %d before, %d after, %sreported",
			       i, a->before[i], a->after[i],
			       in_report(s, a->base, i) ? "" : "not ");
		}
	}
}

TEST_F(sd, long_ranges_small_vectors)
{
	struct scan *s = self->s, *r = calloc(1, sizeof(*r));
	size_t hsize = read_pmd_pagesize();
	struct arena a = { 0 };
	char old[32], *raw;
	size_t c0;
	int fd;

	ASSERT_NE(NULL, r);
	if (!thp_usable() || !hsize)
		SKIP(return, "transparent hugepages are not available");
	a.hpages = hsize / page_size;
	a.pages = (AR_B_OFF + AR_HUGE_B + AR_HUGE_C + 1) * a.hpages;
	a.before = calloc(a.pages, 2);
	ASSERT_NE(NULL, a.before);
	a.after = a.before + a.pages;
	thp_knob("shmem_enabled", "always", old, sizeof(old));
	raw = mmap(NULL, a.pages * page_size + hsize, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, raw);
	a.base = (char *)(((uintptr_t)raw + hsize - 1) & ~(hsize - 1));
	a.b = a.base + AR_B_OFF * hsize;
	a.c = a.b + AR_HUGE_B * hsize;
	a.d = a.c + AR_HUGE_C * hsize;
	/* A, then a hole up to B. */
	ASSERT_EQ(a.base, mmap(a.base, AR_A * page_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	ASSERT_EQ(0, madvise(a.base, AR_A * page_size, MADV_NOHUGEPAGE));
	ASSERT_EQ(0, munmap(a.base + AR_A * page_size,
			    a.b - a.base - AR_A * page_size));
	ASSERT_EQ(a.b, mmap(a.b, AR_HUGE_B * hsize, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	ASSERT_EQ(0, madvise(a.b, AR_HUGE_B * hsize, MADV_HUGEPAGE));
	fd = memfd_create("sd-arena", 0);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, ftruncate(fd, AR_HUGE_C * hsize + AR_D * page_size));
	ASSERT_EQ(a.c, mmap(a.c, AR_HUGE_C * hsize, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_FIXED, fd, 0));
	ASSERT_EQ(0, madvise(a.c, AR_HUGE_C * hsize, MADV_HUGEPAGE));
	ASSERT_EQ(a.d, mmap(a.d, AR_D * page_size, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_FIXED, fd, AR_HUGE_C * hsize));
	ASSERT_EQ(0, madvise(a.d, AR_D * page_size, MADV_NOHUGEPAGE));
	memset(a.base, 1, AR_A * page_size);
	memset(a.b, 1, AR_HUGE_B * hsize);
	memset(a.c, 1, AR_HUGE_C * hsize);
	memset(a.d, 1, AR_D * page_size);
	if (!check_huge_shmem(a.c, AR_HUGE_C * hsize, AR_HUGE_C, hsize)) {
		munmap(raw, a.pages * page_size + hsize);
		close(fd);
		if (old[0])
			thp_knob("shmem_enabled", old, NULL, 0);
		SKIP(return, "no PMD-mapped shmem THP");
	}
	c0 = (a.c - a.base) / page_size;
	/* From inside the anonymous THPs to past the shmem ones, vec_len 1, 3. */
	arena_step(_metadata, &a, s, r, c0 - 3 * a.hpages + 100,
		   a.pages, 1, 0);
	arena_step(_metadata, &a, s, r, c0 - 3 * a.hpages + 100,
		   a.pages, 3, 0);
	/* From inside the second shmem THP, a vector of 209 regions. */
	arena_step(_metadata, &a, s, r, c0 + a.hpages + 37, a.pages, 209, 0);
	/* From inside a shmem THP, vec_len 2. */
	arena_step(_metadata, &a, s, r, c0 + 300, a.pages, 2, 0);
	/* Inside the shmem part, vec_len 77, max_pages 523. */
	arena_step(_metadata, &a, s, r, c0 + 10, c0 + 4 * a.hpages - 5, 77,
		   523);
	/* Across everything, max_pages ending inside a shmem THP. */
	arena_step(_metadata, &a, s, r, 0, a.pages, MAX_REGIONS,
		   AR_A / 3 + 2 * a.hpages + 700);
	munmap(raw, a.pages * page_size + hsize);
	close(fd);
	free(a.before);
	free(r);
	if (old[0])
		thp_knob("shmem_enabled", old, NULL, 0);
}

/*
 * The flag clears what it reports, so it must report only soft-dirty pages:
 * a category_mask without PAGE_IS_SOFT_DIRTY, or with it inverted, is EINVAL,
 * and nothing is cleared.
 */
TEST_F(sd, mask_must_select_soft_dirty)
{
	struct scan *s = self->s;
	char *p = map_guarded(4);
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
	unmap_guarded(p, 4);
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
	char *p = map_guarded(8);
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
	unmap_guarded(p, 8);
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
	char *p = map_guarded(4);
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
	unmap_guarded(p, 4);
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
	tr_mem = map_guarded(TR_PAGES);
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
	unmap_guarded(tr_mem, TR_PAGES);
}

TEST_HARNESS_MAIN
