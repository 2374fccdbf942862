// SPDX-License-Identifier: GPL-2.0

#include <linux/fs.h>
#include <linux/huge_mm.h>
#include <linux/hugetlb.h>
#include <linux/leafops.h>
#include <linux/mm.h>
#include <linux/pagewalk.h>
#include <linux/pgtable.h>
#include <linux/swapops.h>
#include <linux/userfaultfd_k.h>

/*
 * Every helper here is exported to modules. Operations on functions mm does
 * not export (splitting a huge PMD, locking one, uffd_wp_range(), the hugetlb
 * entry accessors) are pagewalk_*() in mm/pagewalk.c instead, for built-in
 * walkers only.
 */

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

__rust_helper void rust_helper_vm_flags_set(struct vm_area_struct *vma,
					    vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

__rust_helper void rust_helper_vm_flags_clear(struct vm_area_struct *vma,
					      vm_flags_t flags)
{
	vm_flags_clear(vma, flags);
}

__rust_helper pte_t rust_helper_pte_clear_soft_dirty(pte_t pte)
{
	return pte_clear_soft_dirty(pte);
}

__rust_helper pte_t rust_helper_pte_swp_clear_soft_dirty(pte_t pte)
{
	return pte_swp_clear_soft_dirty(pte);
}

__rust_helper pte_t rust_helper_pte_softleaf_wrprotect(pte_t pte)
{
	return pte_softleaf_wrprotect(pte);
}

__rust_helper pte_t rust_helper_pte_mksoft_dirty(pte_t pte)
{
	return pte_mksoft_dirty(pte);
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

__rust_helper pmd_t rust_helper_pmd_swp_clear_soft_dirty(pmd_t pmd)
{
	return pmd_swp_clear_soft_dirty(pmd);
}

__rust_helper pmd_t rust_helper_pmd_softleaf_wrprotect(pmd_t pmd)
{
	return pmd_softleaf_wrprotect(pmd);
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

__rust_helper bool rust_helper_PageAnon(const struct page *page)
{
	return PageAnon(page);
}

__rust_helper bool rust_helper_folio_test_anon(const struct folio *folio)
{
	return folio_test_anon(folio);
}

__rust_helper softleaf_t rust_helper_softleaf_from_pte(pte_t pte)
{
	return softleaf_from_pte(pte);
}

__rust_helper softleaf_t rust_helper_softleaf_from_pmd(pmd_t pmd)
{
	return softleaf_from_pmd(pmd);
}

__rust_helper bool rust_helper_softleaf_has_pfn(softleaf_t entry)
{
	return softleaf_has_pfn(entry);
}

__rust_helper struct folio *rust_helper_softleaf_to_folio(softleaf_t entry)
{
	return softleaf_to_folio(entry);
}

__rust_helper bool rust_helper_softleaf_is_hwpoison(softleaf_t entry)
{
	return softleaf_is_hwpoison(entry);
}

__rust_helper bool rust_helper_softleaf_is_marker(softleaf_t entry)
{
	return softleaf_is_marker(entry);
}

__rust_helper bool rust_helper_softleaf_is_migration(softleaf_t entry)
{
	return softleaf_is_migration(entry);
}

__rust_helper pte_t rust_helper_pte_mkuffd(pte_t pte)
{
	return pte_mkuffd(pte);
}

__rust_helper pte_t rust_helper_pte_swp_mkuffd(pte_t pte)
{
	return pte_swp_mkuffd(pte);
}

__rust_helper pte_t rust_helper_make_pte_marker_uffd_wp(void)
{
	return make_pte_marker(PTE_MARKER_UFFD_WP);
}

__rust_helper pmd_t rust_helper_pmd_mkuffd(pmd_t pmd)
{
	return pmd_mkuffd(pmd);
}

__rust_helper pmd_t rust_helper_pmd_swp_mkuffd(pmd_t pmd)
{
	return pmd_swp_mkuffd(pmd);
}

__rust_helper bool rust_helper_pmd_is_migration_entry(pmd_t pmd)
{
	return pmd_is_migration_entry(pmd);
}

__rust_helper void rust_helper_i_mmap_lock_write(struct address_space *mapping)
{
	i_mmap_lock_write(mapping);
}

__rust_helper void rust_helper_i_mmap_unlock_write(struct address_space *mapping)
{
	i_mmap_unlock_write(mapping);
}

/*
 * Without CONFIG_HUGETLB_PAGE no hugetlb VMA exists and no walk reaches the
 * callers of the helpers below; the stubs only keep the bindings complete,
 * and warn if that ever stops being true.
 */
#ifdef CONFIG_HUGETLB_PAGE
__rust_helper unsigned long rust_helper_hugetlb_vma_page_size(struct vm_area_struct *vma)
{
	return huge_page_size(hstate_vma(vma));
}

__rust_helper spinlock_t *
rust_helper_hugetlb_vma_pte_lock(struct vm_area_struct *vma, pte_t *ptep)
{
	return huge_pte_lock(hstate_vma(vma), vma->vm_mm, ptep);
}

__rust_helper pte_t rust_helper_huge_pte_mkuffd(pte_t pte)
{
	return huge_pte_mkuffd(pte);
}

__rust_helper struct page *rust_helper_hugetlb_pte_page(pte_t pte)
{
	return pte_page(pte);
}
#else
__rust_helper unsigned long rust_helper_hugetlb_vma_page_size(struct vm_area_struct *vma)
{
	WARN_ON_ONCE(1);
	return PAGE_SIZE;
}

__rust_helper spinlock_t *
rust_helper_hugetlb_vma_pte_lock(struct vm_area_struct *vma, pte_t *ptep)
{
	WARN_ON_ONCE(1);
	return NULL;
}

__rust_helper pte_t rust_helper_huge_pte_mkuffd(pte_t pte)
{
	WARN_ON_ONCE(1);
	return pte;
}

__rust_helper struct page *rust_helper_hugetlb_pte_page(pte_t pte)
{
	WARN_ON_ONCE(1);
	return pte_page(pte);
}
#endif
