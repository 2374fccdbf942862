// SPDX-License-Identifier: GPL-2.0

#include <linux/huge_mm.h>
#include <linux/hugetlb.h>
#include <linux/mm.h>
#include <linux/pgtable.h>

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

__rust_helper bool rust_helper_vma_is_cow_mapping(const struct vm_area_struct *vma)
{
	return vma_is_cow_mapping(vma);
}

__rust_helper bool rust_helper_mm_has_pinned(const struct mm_struct *mm)
{
	return mm_flags_test(MMF_HAS_PINNED, mm);
}

__rust_helper bool rust_helper_folio_maybe_dma_pinned(struct folio *folio)
{
	return folio_maybe_dma_pinned(folio);
}
