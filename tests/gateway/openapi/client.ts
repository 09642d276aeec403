// A frontend team's use of the public API, type-checked by tests/gateway/test_openapi.py against
// the types openapi-typescript generates from the document into ./schema.d.ts. If a name or a
// shape used here changes in the document, `tsc --noEmit --strict` fails.
import type { components, operations, paths } from "./schema";

// Registering a household: the request body as the document describes it.
type NewHousehold =
  paths["/v1/households"]["post"]["requestBody"]["content"]["application/json"];

export const household: NewHousehold = {
  area_code: "24010401",
  house_code: "24010000001",
  address: "352 หมู่ 1 ตำบลบางตีนเป็ด",
  location: { lat: 13.6904, lon: 101.0779 },
  failed_indicators: ["2560-09", "2560-20"],
  members: [{ first_name: "ศิริพร", last_name: "แสงทอง", citizen_id: "1-1017-00230-07-4" }],
};

// @ts-expect-error: the status is the service's to decide; a new household cannot choose it.
export const chosenStatus: NewHousehold = { area_code: "24010401", status: "graduated" };

// A paginated list: items and the cursor of the next page (null on the last one).
type HouseholdPage =
  paths["/v1/households"]["get"]["responses"][200]["content"]["application/json"];
type HouseholdFilters = NonNullable<operations["listHouseholds"]["parameters"]["query"]>;

export const filters: HouseholdFilters = { area_code: "2401", status: "target", limit: 50 };

export function targetIds(page: HouseholdPage): { ids: string[]; next: string | null } {
  const status: components["schemas"]["HouseholdStatus"] = "target";
  return {
    ids: page.items.filter((h) => h.status === status).map((h) => h.id),
    next: page.next_cursor ?? null,
  };
}

// An area's progress: ratios may be null (no targets), money is a decimal string of THB.
type AreaProgress =
  paths["/v1/progress/{area_code}"]["get"]["responses"][200]["content"]["application/json"];

export function describe(progress: AreaProgress): string {
  const graduated: number | null = progress.graduated_ratio;
  const delivered: string = progress.amount_thb;
  const health = progress.dimensions["health"];
  return `${progress.name_th}: ${graduated ?? "-"}, ${delivered} THB, health ${health?.target_households}`;
}

export function asNumber(progress: AreaProgress): number {
  // @ts-expect-error: amounts are decimal strings, never floats.
  return progress.amount_thb;
}

// Other systems' token: a form post answered with a bearer token.
type Token =
  paths["/v1/oauth/token"]["post"]["responses"][200]["content"]["application/json"];

export function bearer(token: Token): string {
  return `${token.token_type} ${token.access_token}`;
}
