// SPDX-License-Identifier: GPL-2.0

#include <linux/mm_inline.h>
#include <linux/mmu_notifier.h>

__rust_helper void rust_helper_mmu_notifier_range_init(struct mmu_notifier_range *range,
						       enum mmu_notifier_event event,
						       unsigned int flags,
						       struct mm_struct *mm,
						       unsigned long start,
						       unsigned long end)
{
	mmu_notifier_range_init(range, event, flags, mm, start, end);
}

__rust_helper void
rust_helper_mmu_notifier_invalidate_range_start(struct mmu_notifier_range *range)
{
	mmu_notifier_invalidate_range_start(range);
}

__rust_helper void
rust_helper_mmu_notifier_invalidate_range_end(struct mmu_notifier_range *range)
{
	mmu_notifier_invalidate_range_end(range);
}

__rust_helper void rust_helper_inc_tlb_flush_pending(struct mm_struct *mm)
{
	inc_tlb_flush_pending(mm);
}

__rust_helper void rust_helper_dec_tlb_flush_pending(struct mm_struct *mm)
{
	dec_tlb_flush_pending(mm);
}
