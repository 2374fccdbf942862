// SPDX-License-Identifier: GPL-2.0

#include <linux/huge_mm.h>
#include <linux/hugetlb.h>
#include <linux/leafops.h>
#include <linux/mm.h>
#include <linux/mm_inline.h>
#include <linux/mmu_notifier.h>
#include <linux/pgtable.h>
#include <linux/sched/mm.h>

__rust_helper int rust_helper_mmap_read_lock_killable(struct mm_struct *mm)
{
	return mmap_read_lock_killable(mm);
}

__rust_helper void rust_helper_mmap_write_lock(struct mm_struct *mm)
{
	mmap_write_lock(mm);
}

__rust_helper int rust_helper_mmap_write_lock_killable(struct mm_struct *mm)
{
	return mmap_write_lock_killable(mm);
}

__rust_helper void rust_helper_mmap_write_unlock(struct mm_struct *mm)
{
	mmap_write_unlock(mm);
}

__rust_helper pte_t rust_helper_ptep_get(pte_t *ptep)
{
	return ptep_get(ptep);
}

__rust_helper pmd_t rust_helper_pmdp_get_lockless(pmd_t *pmdp)
{
	return pmdp_get_lockless(pmdp);
}

__rust_helper pmd_t rust_helper_pmdp_get(pmd_t *pmdp)
{
	return pmdp_get(pmdp);
}

__rust_helper bool rust_helper_pte_none(pte_t pte)
{
	return pte_none(pte);
}

__rust_helper bool rust_helper_pte_present(pte_t pte)
{
	return pte_present(pte);
}

__rust_helper unsigned long rust_helper_pte_pfn(pte_t pte)
{
	return pte_pfn(pte);
}

__rust_helper bool rust_helper_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

__rust_helper bool rust_helper_pte_write(pte_t pte)
{
	return pte_write(pte);
}

__rust_helper bool rust_helper_pte_young(pte_t pte)
{
	return pte_young(pte);
}

__rust_helper bool rust_helper_pte_dirty(pte_t pte)
{
	return pte_dirty(pte);
}

__rust_helper bool rust_helper_pte_soft_dirty(pte_t pte)
{
	return pte_soft_dirty(pte);
}

__rust_helper bool rust_helper_pte_swp_soft_dirty(pte_t pte)
{
	return pte_swp_soft_dirty(pte);
}

__rust_helper pte_t rust_helper_pte_clear_soft_dirty(pte_t pte)
{
	return pte_clear_soft_dirty(pte);
}

__rust_helper pte_t rust_helper_pte_swp_clear_soft_dirty(pte_t pte)
{
	return pte_swp_clear_soft_dirty(pte);
}

__rust_helper pte_t rust_helper_pte_wrprotect(pte_t pte)
{
	return pte_wrprotect(pte);
}

__rust_helper bool rust_helper_pte_uffd(pte_t pte)
{
	return pte_uffd(pte);
}

__rust_helper bool rust_helper_pte_swp_uffd(pte_t pte)
{
	return pte_swp_uffd(pte);
}

__rust_helper bool rust_helper_pte_is_marker(pte_t pte)
{
	return softleaf_is_marker(softleaf_from_pte(pte));
}

__rust_helper bool rust_helper_pte_is_guard_marker(pte_t pte)
{
	return softleaf_is_guard_marker(softleaf_from_pte(pte));
}

__rust_helper bool rust_helper_pmd_none(pmd_t pmd)
{
	return pmd_none(pmd);
}

__rust_helper bool rust_helper_pmd_present(pmd_t pmd)
{
	return pmd_present(pmd);
}

__rust_helper bool rust_helper_pmd_trans_huge(pmd_t pmd)
{
	return pmd_trans_huge(pmd);
}

__rust_helper bool rust_helper_pmd_soft_dirty(pmd_t pmd)
{
	return pmd_soft_dirty(pmd);
}

__rust_helper bool rust_helper_pmd_write(pmd_t pmd)
{
	return pmd_write(pmd);
}

__rust_helper bool rust_helper_pmd_young(pmd_t pmd)
{
	return pmd_young(pmd);
}

__rust_helper bool rust_helper_pmd_dirty(pmd_t pmd)
{
	return pmd_dirty(pmd);
}

__rust_helper bool rust_helper_is_huge_zero_pmd(pmd_t pmd)
{
	return is_huge_zero_pmd(pmd);
}

__rust_helper spinlock_t *
rust_helper_pmd_trans_huge_lock(pmd_t *pmd, struct vm_area_struct *vma)
{
	return pmd_trans_huge_lock(pmd, vma);
}

__rust_helper void rust_helper_split_huge_pmd(struct vm_area_struct *vma,
					      pmd_t *pmd, unsigned long address)
{
	split_huge_pmd(vma, pmd, address);
}

__rust_helper void rust_helper_pte_unmap_unlock(pte_t *pte, spinlock_t *ptl)
{
	pte_unmap_unlock(pte, ptl);
}

__rust_helper pte_t rust_helper_ptep_modify_prot_start(struct vm_area_struct *vma,
						       unsigned long addr, pte_t *ptep)
{
	return ptep_modify_prot_start(vma, addr, ptep);
}

__rust_helper void rust_helper_ptep_modify_prot_commit(struct vm_area_struct *vma,
						       unsigned long addr, pte_t *ptep,
						       pte_t old_pte, pte_t pte)
{
	ptep_modify_prot_commit(vma, addr, ptep, old_pte, pte);
}

__rust_helper void rust_helper_set_pte_at(struct mm_struct *mm, unsigned long addr,
					  pte_t *ptep, pte_t pte)
{
	set_pte_at(mm, addr, ptep, pte);
}

__rust_helper void rust_helper_lazy_mmu_mode_enable(void)
{
	lazy_mmu_mode_enable();
}

__rust_helper void rust_helper_lazy_mmu_mode_disable(void)
{
	lazy_mmu_mode_disable();
}

__rust_helper pmd_t rust_helper_pmd_mkdirty(pmd_t pmd)
{
	return pmd_mkdirty(pmd);
}

__rust_helper pmd_t rust_helper_pmd_mkyoung(pmd_t pmd)
{
	return pmd_mkyoung(pmd);
}

__rust_helper pmd_t rust_helper_pmd_wrprotect(pmd_t pmd)
{
	return pmd_wrprotect(pmd);
}

__rust_helper pmd_t rust_helper_pmd_clear_soft_dirty(pmd_t pmd)
{
	return pmd_clear_soft_dirty(pmd);
}

__rust_helper void rust_helper_set_pmd_at(struct mm_struct *mm, unsigned long addr,
					  pmd_t *pmdp, pmd_t pmd)
{
	set_pmd_at(mm, addr, pmdp, pmd);
}

__rust_helper pte_t rust_helper_huge_ptep_get(struct mm_struct *mm, unsigned long addr,
					      pte_t *ptep)
{
#ifdef CONFIG_HUGETLB_PAGE
	return huge_ptep_get(mm, addr, ptep);
#else
	/* No hugetlb VMA exists, so no walk ever reaches a hugetlb entry. */
	return ptep_get(ptep);
#endif
}

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
