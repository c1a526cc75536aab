from .tenancy import PERMISSIONS, role_can


def shell(request):
    """What the base layout needs: the company, the switcher, and what the role may see."""
    membership = getattr(request, "membership", None)
    role = membership.role if membership else None
    return {
        "current_company": getattr(request, "company", None),
        "current_membership": membership,
        "user_memberships": getattr(request, "memberships", []),
        "can": {name.replace(".", "_"): role_can(role, name) for name in PERMISSIONS},
    }
