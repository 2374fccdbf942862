// SPDX-License-Identifier: GPL-2.0

#include <linux/huge_mm.h>
#include <linux/hugetlb.h>
#include <linux/leafops.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/userfaultfd_k.h>

__rust_helper bool rust_helper_pgtable_supports_soft_dirty(void)
{
	return pgtable_supports_soft_dirty();
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

__rust_helper bool rust_helper_pte_soft_dirty(pte_t pte)
{
	return pte_soft_dirty(pte);
}

__rust_helper bool rust_helper_pte_swp_soft_dirty(pte_t pte)
{
	return pte_swp_soft_dirty(pte);
}

__rust_helper bool rust_helper_pte_uffd(pte_t pte)
{
	return pte_uffd(pte);
}

__rust_helper bool rust_helper_pte_swp_uffd_any(pte_t pte)
{
	return pte_swp_uffd_any(pte);
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

__rust_helper bool rust_helper_pmd_is_huge(pmd_t pmd)
{
	return pmd_is_huge(pmd);
}

__rust_helper bool rust_helper_pmd_soft_dirty(pmd_t pmd)
{
	return pmd_soft_dirty(pmd);
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

__rust_helper bool rust_helper_pmd_swp_soft_dirty(pmd_t pmd)
{
	return pmd_swp_soft_dirty(pmd);
}

__rust_helper bool rust_helper_pmd_uffd(pmd_t pmd)
{
	return pmd_uffd(pmd);
}

__rust_helper bool rust_helper_pmd_swp_uffd(pmd_t pmd)
{
	return pmd_swp_uffd(pmd);
}

#ifdef CONFIG_HUGETLB_PAGE
__rust_helper bool rust_helper_huge_pte_none(pte_t pte)
{
	return huge_pte_none(pte);
}

__rust_helper bool rust_helper_huge_pte_uffd(pte_t pte)
{
	return huge_pte_uffd(pte);
}
#else
/* No hugetlb entry exists to ask about. */
__rust_helper bool rust_helper_huge_pte_none(pte_t pte)
{
	return pte_none(pte);
}

__rust_helper bool rust_helper_huge_pte_uffd(pte_t pte)
{
	return false;
}
#endif
