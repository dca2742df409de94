// The users page, an admin's: the team (add a user, disable or re-enable one, make an admin
// or a member, list and revoke anyone's tokens) and the audit trail (team.js). A member
// is told whose page it is; the server refuses them these routes anyway.
import { ApiError, el, showError, withLogin } from "./api.js";
import { drawTeam, teamSection } from "./team.js";

withLogin(async () => {
  const team = await teamSection();
  if (!team.length) {
    showError(new ApiError(403, "only an admin may list, add or disable users"),
      { title: "Users: an admin's page" });
    return;
  }
  const page = document.getElementById("page");
  page.replaceChildren(el("h1", {}, "Users"), ...team);
  page.hidden = false;
  await drawTeam();
});
